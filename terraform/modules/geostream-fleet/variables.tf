variable "name" {
  type        = string
  description = "Name of the fleet: the prefix of every resource. Lower-case letters, digits and hyphens."
  default     = "geostream"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.name))
    error_message = "name: 2 to 16 lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "primary_region" {
  type        = string
  description = "Region of PostgreSQL, Redis and the fleet's secrets; must be one of `regions`."
}

variable "regions" {
  type = map(object({
    cidr_block         = string
    availability_zones = optional(list(string))
    site               = optional(string)
    nameservers        = optional(number, 2)
    probers            = optional(number, 1)
    instance_type      = optional(string, "t3.small")
  }))
  description = <<-EOT
    Regions to run nameservers in, by AWS region name. Each gets a VPC (`cidr_block`,
    a /16 or larger that overlaps no other region's: the VPCs are peered with the
    primary region's), `nameservers` instances behind a UDP+TCP network load
    balancer, and `probers` probe-only instances, spread over `availability_zones`
    (default: the first `az_count` of REGIONa, REGIONb, REGIONc, REGIONd). `site`
    (default: the region name) is the GeoStream site of the region's servers.
  EOT

  validation {
    condition     = length(var.regions) >= 1 && alltrue([for r in values(var.regions) : r.nameservers >= 1 && r.probers >= 0])
    error_message = "regions: at least one region, each with at least one nameserver."
  }
}

variable "container_image" {
  type        = string
  description = "GeoStream DNS container image (built from the project's Dockerfile), e.g. an ECR repository URI with a tag."
}

variable "nameserver_domain" {
  type        = string
  description = "Domain for the nameserver host names (ns-REGION.DOMAIN) given to the parent zones; null to use addresses only."
  default     = null
  nullable    = true
}

variable "api_token" {
  type        = string
  description = "Bearer token for writes to the /v1 API (GEOSTREAM_API_TOKEN). Kept in Secrets Manager."
  sensitive   = true

  validation {
    condition     = length(var.api_token) >= 32
    error_message = "api_token: at least 32 characters (openssl rand -hex 32)."
  }
}

variable "redis_auth_token" {
  type        = string
  description = "AUTH token of the Redis replication group (16 to 128 printable characters, no @, \" or /)."
  sensitive   = true

  validation {
    condition     = length(var.redis_auth_token) >= 16 && length(var.redis_auth_token) <= 128 && !can(regex("[@\"/ ]", var.redis_auth_token))
    error_message = "redis_auth_token: 16 to 128 characters, none of @, \", / or space."
  }
}

variable "redis_prefix" {
  type        = string
  description = "Prefix of every Redis key and channel, so that fleets can share one Redis."
  default     = "geostream:"
}

variable "api_certificate_arn" {
  type        = string
  description = "ACM certificate (in the primary region) for a TLS listener on port 443 of the primary region's load balancer that forwards to the /v1 API; null for no API listener."
  default     = null
  nullable    = true
}

variable "api_allowed_cidrs" {
  type        = list(string)
  description = "Networks allowed to use the TLS API listener (where Terraform and operators run)."
  default     = []
}

variable "http_allowed_cidrs" {
  type        = list(string)
  description = "Networks allowed to reach every server's HTTP port 8080 directly (Prometheus scraping /metrics)."
  default     = []
}

variable "az_count" {
  type        = number
  description = "Availability zones per region where a region does not name its own."
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4
    error_message = "az_count: 2 to 4."
  }
}

variable "database_instance_class" {
  type        = string
  description = "RDS instance class of PostgreSQL."
  default     = "db.t4g.medium"
}

variable "database_engine_version" {
  type        = string
  description = "PostgreSQL major version."
  default     = "16"
}

variable "database_allocated_storage" {
  type        = number
  description = "PostgreSQL storage in GiB (grows automatically up to 5 times this)."
  default     = 20
}

variable "database_backup_retention_days" {
  type        = number
  description = "Days of PostgreSQL automated backups."
  default     = 14
}

variable "redis_node_type" {
  type        = string
  description = "ElastiCache node type of Redis."
  default     = "cache.t4g.small"
}

variable "redis_engine_version" {
  type        = string
  description = "Redis engine version."
  default     = "7.1"
}

variable "ami_ssm_parameter" {
  type        = string
  description = "SSM parameter with the servers' AMI (Amazon Linux 2023, x86_64 for the default instance type)."
  default     = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

variable "log_retention_days" {
  type        = number
  description = "Days to keep flow logs and database logs."
  default     = 365
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the database and the load balancers from deletion."
  default     = true
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
}
