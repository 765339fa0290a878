output "load_balancer_dns_name" {
  description = "DNS name of the region's network load balancer."
  value       = aws_lb.dns.dns_name
}

output "nameserver_addresses" {
  description = "The load balancer's public IPv4 addresses, one per availability zone (stable Elastic IPs)."
  value       = [for az in sort(keys(aws_eip.nlb)) : aws_eip.nlb[az].public_ip]
}

output "security_group_id" {
  description = "Security group of the region's servers."
  value       = aws_security_group.servers.id
}

output "api_enabled" {
  description = "Whether the load balancer has the TLS API listener (port 443)."
  value       = var.api_certificate_arn != null
}
