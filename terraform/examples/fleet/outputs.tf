output "ns_records" {
  description = "Give these NS records to the parent of every zone the fleet serves."
  value       = module.fleet.ns_records
}

output "ns_address_records" {
  description = "A records for the nameserver names (glue where the parent needs it)."
  value       = module.fleet.ns_address_records
}

output "nameserver_addresses" {
  description = "Load balancer addresses per region (answer DNS on port 53, UDP and TCP)."
  value       = module.fleet.nameserver_addresses
}

output "load_balancer_dns_names" {
  description = "Load balancer DNS names per region."
  value       = module.fleet.load_balancer_dns_names
}

output "api_endpoint" {
  description = "Point the API certificate's host name at this (CNAME); null without a certificate."
  value       = module.fleet.api_endpoint
}

output "database_endpoint" {
  description = "PostgreSQL endpoint (for migrate, from inside a fleet VPC)."
  value       = module.fleet.database_endpoint
}
