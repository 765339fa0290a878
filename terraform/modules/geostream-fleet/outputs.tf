locals {
  ns_names = var.nameserver_domain == null ? {} : {
    for region in keys(var.regions) : region => "ns-${region}.${trimsuffix(var.nameserver_domain, ".")}."
  }
}

output "nameserver_addresses" {
  description = "Public IPv4 addresses of each region's load balancer (fixed Elastic IPs): where DNS is answered."
  value       = { for region, nodes in module.nodes : region => nodes.nameserver_addresses }
}

output "load_balancer_dns_names" {
  description = "DNS name of each region's network load balancer."
  value       = { for region, nodes in module.nodes : region => nodes.load_balancer_dns_name }
}

output "ns_records" {
  description = "NS delegation for the parent of every zone the fleet serves: the nameserver host names (ns-REGION.nameserver_domain). Empty without nameserver_domain."
  value       = [for region in sort(keys(local.ns_names)) : local.ns_names[region]]
}

output "ns_address_records" {
  description = "A records (and glue, where the nameserver domain is below the delegated zone) for the names in ns_records."
  value       = { for region, name in local.ns_names : name => module.nodes[region].nameserver_addresses }
}

output "api_endpoint" {
  description = "Load balancer name to point the API certificate's host name at (CNAME); the API is https://THAT-NAME/v1. Null without api_certificate_arn."
  value       = var.api_certificate_arn == null ? null : module.nodes[var.primary_region].load_balancer_dns_name
}

output "database_endpoint" {
  description = "PostgreSQL host:port (for `geostream-dns migrate` and `apply` from inside a fleet VPC)."
  value       = aws_db_instance.this.endpoint
}

output "database_secret_arn" {
  description = "Secrets Manager secret with the PostgreSQL user name and password (managed and rotated by RDS)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "redis_endpoint" {
  description = "Redis primary endpoint (TLS, AUTH)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "runtime_secret_arn" {
  description = "Secrets Manager secret with the servers' REDIS_URL and API token."
  value       = aws_secretsmanager_secret.runtime.arn
}

output "vpc_ids" {
  description = "The VPC of each region."
  value       = { for region, network in module.network : region => network.vpc_id }
}
