variable "primary_region" {
  type        = string
  description = "Region of PostgreSQL and Redis."
  default     = "us-east-1"
}

variable "container_image" {
  type        = string
  description = "GeoStream DNS container image, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/geostream-dns:0.1.0."
}

variable "nameserver_domain" {
  type        = string
  description = "Domain for the nameserver host names (ns-REGION.DOMAIN), e.g. dns.example.net."
  default     = null
  nullable    = true
}

variable "api_token" {
  type        = string
  description = "Bearer token for /v1 writes (openssl rand -hex 32)."
  sensitive   = true
}

variable "redis_auth_token" {
  type        = string
  description = "Redis AUTH token (openssl rand -hex 32)."
  sensitive   = true
}

variable "api_certificate_arn" {
  type        = string
  description = "ACM certificate in the primary region for the TLS API listener; null for none."
  default     = null
  nullable    = true
}

variable "operator_cidrs" {
  type        = list(string)
  description = "Networks of the operators and of Terraform: they may use the API listener."
  default     = []
}
