variable "api_url" {
  type        = string
  description = "Base URL of a GeoStream server's HTTP endpoint, e.g. https://dns-api.example.net (the fleet's api_endpoint) or http://127.0.0.1:8080."
}

variable "api_token" {
  type        = string
  description = "Bearer token for /v1 writes (GEOSTREAM_API_TOKEN of the servers)."
  sensitive   = true
}

variable "zones_dir" {
  type        = string
  description = "Folder of zone files to manage."
  default     = "../../../zones"
}

variable "force" {
  type        = bool
  description = "Allow changes that delete or change more than 30% of a zone's records."
  default     = false
}
