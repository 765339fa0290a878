variable "name" {
  type        = string
  description = "Name prefix for every resource (the fleet's name)."
}

variable "region" {
  type        = string
  description = "AWS region this network is built in."
}

variable "cidr_block" {
  type        = string
  description = "IPv4 CIDR of the VPC; must not overlap the other regions' (the VPCs are peered)."
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones (names) to spread subnets and NAT gateways over."
}

variable "log_retention_days" {
  type        = number
  description = "Days to keep VPC flow logs."
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
}
