output "zones" {
  description = "Names of the zones this module manages."
  value       = sort(keys(restapi_object.zone))
}
