terraform {
  required_version = ">= 1.5.0"

  required_providers {
    restapi = {
      source  = "Mastercard/restapi"
      version = ">= 1.20.0"
    }
  }
}

# GeoStream's /v1 API: PUT answers the plan and the new generation (not the
# zone), so the provider reads the zone back with GET after each write.
provider "restapi" {
  uri                  = var.api_url
  write_returns_object = false
  timeout              = 60
  headers = {
    Authorization = "Bearer ${var.api_token}"
    Content-Type  = "application/json"
  }
}
