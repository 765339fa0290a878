output "vpc_id" {
  description = "The region's VPC."
  value       = aws_vpc.this.id
}

output "cidr_block" {
  description = "The VPC's IPv4 CIDR."
  value       = aws_vpc.this.cidr_block
}

output "availability_zones" {
  description = "Availability zones the subnets are in."
  value       = local.azs
}

output "public_subnet_ids" {
  description = "Public subnet per availability zone (load balancer, NAT)."
  value       = { for az, subnet in aws_subnet.public : az => subnet.id }
}

output "private_subnet_ids" {
  description = "Private subnets (instances, databases), in availability-zone order."
  value       = [for az in local.azs : aws_subnet.private[az].id]
}

output "private_route_table_ids" {
  description = "Route tables of the private subnets, by availability zone."
  value       = { for az, table in aws_route_table.private : az => table.id }
}

output "logs_kms_key_arn" {
  description = "KMS key for this region's CloudWatch logs."
  value       = aws_kms_key.logs.arn
}
