# Zones managed from Terraform through GeoStream's /v1 API: each zone file
# becomes one `PUT /v1/zones/{zone}` with the zone as JSON; removing a file
# from the folder deletes its zone (`DELETE /v1/zones/{zone}`). The API
# validates a zone as `geostream-dns check` does and applies it atomically, as
# a new generation that every server serves within a second.
#
# The restapi provider (configured by the caller) carries the API's URL and the
# bearer token.

locals {
  files = fileset(var.zones_dir, "*.{yaml,yml}")
  zones = {
    for file in local.files :
    trimsuffix(trimsuffix(file, ".yaml"), ".yml") => yamldecode(file("${var.zones_dir}/${file}"))
  }
}

resource "restapi_object" "zone" {
  for_each = local.zones

  path          = "/v1/zones"
  object_id     = each.key
  data          = jsonencode(each.value)
  create_method = "PUT"
  create_path   = "/v1/zones/{id}"
  update_method = "PUT"
  update_path   = "/v1/zones/{id}"
  read_path     = "/v1/zones/{id}"
  destroy_path  = "/v1/zones/{id}"
  query_string  = var.force ? "force=true" : ""
}
