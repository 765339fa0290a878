# Example: a GeoStream DNS fleet in three regions, matching the regions of the
# sample zone (zones/example.com.yaml). Secrets come from variables without
# defaults, e.g. TF_VAR_api_token and TF_VAR_redis_auth_token in the environment.
#
#   terraform init
#   terraform apply -var container_image=... -var nameserver_domain=dns.example.net

module "fleet" {
  source = "../../modules/geostream-fleet"

  name           = "geostream"
  primary_region = var.primary_region
  regions = {
    us-east-1      = { cidr_block = "10.10.0.0/16", nameservers = 2 }
    eu-central-1   = { cidr_block = "10.20.0.0/16", nameservers = 2 }
    ap-southeast-1 = { cidr_block = "10.30.0.0/16", nameservers = 2, probers = 1 }
  }

  container_image     = var.container_image
  nameserver_domain   = var.nameserver_domain
  api_token           = var.api_token
  redis_auth_token    = var.redis_auth_token
  api_certificate_arn = var.api_certificate_arn
  api_allowed_cidrs   = var.operator_cidrs

  tags = { project = "geostream-dns", environment = "example" }
}
