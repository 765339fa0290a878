# Example: manage the zones in a folder (by default the repository's zones/)
# through a running fleet's /v1 API. Kept apart from the fleet's configuration:
# the API must be up before this plan can run.
#
#   terraform init
#   TF_VAR_api_token=... terraform apply -var api_url=https://dns-api.example.net

module "zones" {
  source = "../../modules/geostream-zones"

  zones_dir = abspath("${path.root}/${var.zones_dir}")
  force     = var.force
}
