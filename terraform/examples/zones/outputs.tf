output "zones" {
  description = "Zones managed through the API."
  value       = module.zones.zones
}
