variable "name" {
  type        = string
  description = "Name prefix for every resource (the fleet's name)."
}

variable "region" {
  type        = string
  description = "AWS region these servers run in."
}

variable "site" {
  type        = string
  description = "GeoStream site name of the servers in this region (GEOSTREAM_SITE)."
}

variable "vpc_id" {
  type        = string
  description = "The region's VPC."
}

variable "vpc_cidr" {
  type        = string
  description = "The region's VPC CIDR (load balancer health checks come from it)."
}

variable "public_subnet_ids" {
  type        = map(string)
  description = "Public subnet per availability zone, for the load balancer."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets for the instances."
}

variable "container_image" {
  type        = string
  description = "GeoStream DNS container image to run."
}

variable "instance_type" {
  type        = string
  description = "EC2 instance type of nameservers and probers."
}

variable "nameservers" {
  type        = number
  description = "Nameserver instances in this region."
}

variable "probers" {
  type        = number
  description = "Probe-only instances in this region."
}

variable "ami_ssm_parameter" {
  type        = string
  description = "SSM parameter holding the AMI id (Amazon Linux 2023)."
}

variable "instance_profile_name" {
  type        = string
  description = "IAM instance profile of the servers (reads the fleet's secrets)."
}

variable "secrets_region" {
  type        = string
  description = "Region of the fleet's secrets (the primary region)."
}

variable "database_secret_arn" {
  type        = string
  description = "Secrets Manager secret with the database user name and password."
}

variable "runtime_secret_arn" {
  type        = string
  description = "Secrets Manager secret with the Redis URL and the API token."
}

variable "database_host" {
  type        = string
  description = "PostgreSQL host name."
}

variable "database_port" {
  type        = number
  description = "PostgreSQL port."
}

variable "database_name" {
  type        = string
  description = "PostgreSQL database name."
}

variable "redis_prefix" {
  type        = string
  description = "Prefix of every Redis key and channel (GEOSTREAM_REDIS_PREFIX)."
}

variable "http_allowed_cidrs" {
  type        = list(string)
  description = "Networks that may reach the servers' HTTP port (metrics, API) directly."
}

variable "api_certificate_arn" {
  type        = string
  description = "ACM certificate for a TLS API listener (port 443) on this region's load balancer; null for none."
  nullable    = true
}

variable "api_allowed_cidrs" {
  type        = list(string)
  description = "Networks that may use the TLS API listener."
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the load balancer from deletion."
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
}
