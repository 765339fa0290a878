# A GeoStream DNS fleet across several AWS regions.
#
#   every region (var.regions): a VPC (modules/network), nameservers behind a
#     UDP+TCP network load balancer with fixed addresses and probe-only servers
#     (modules/nodes), all in the region's GeoStream site;
#   the primary region: PostgreSQL (RDS, Multi-AZ) holding the zones, Redis
#     (ElastiCache, Multi-AZ, TLS and AUTH) holding the shared cache and health
#     state, and the fleet's secrets; every other region's VPC is peered with it.
#
# One AWS provider serves every region through the per-resource `region`
# argument (AWS provider 6).

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  tags      = merge({ "geostream:fleet" = var.name }, var.tags)
  secondary = { for region, spec in var.regions : region => spec if region != var.primary_region }
  sites     = { for region, spec in var.regions : region => coalesce(spec.site, region) }
  zones = {
    for region, spec in var.regions : region => coalesce(
      spec.availability_zones, [for letter in slice(["a", "b", "c", "d"], 0, var.az_count) : "${region}${letter}"]
    )
  }
  account = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
}

# The primary region must be one of the regions (it holds the data tier).
resource "terraform_data" "primary_region_check" {
  lifecycle {
    precondition {
      condition     = contains(keys(var.regions), var.primary_region)
      error_message = "primary_region must be one of the keys of regions."
    }
  }
}

module "network" {
  source   = "./modules/network"
  for_each = var.regions

  name               = var.name
  region             = each.key
  cidr_block         = each.value.cidr_block
  availability_zones = local.zones[each.key]
  log_retention_days = var.log_retention_days
  tags               = local.tags
}

# ---- KMS key of the data tier (primary region) --------------------------------------

resource "aws_kms_key" "data" {
  region                  = var.primary_region
  description             = "${var.name}: PostgreSQL, Redis and the fleet's secrets"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = local.account }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncrypts"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.primary_region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
      },
    ]
  })
  tags = local.tags
}

resource "aws_kms_alias" "data" {
  region        = var.primary_region
  name          = "alias/${var.name}-data"
  target_key_id = aws_kms_key.data.key_id
}

# ---- peering: every region's VPC with the primary region's ----------------------------

resource "aws_vpc_peering_connection" "to_primary" {
  for_each    = local.secondary
  region      = each.key
  vpc_id      = module.network[each.key].vpc_id
  peer_vpc_id = module.network[var.primary_region].vpc_id
  peer_region = var.primary_region
  auto_accept = false
  tags        = merge(local.tags, { Name = "${var.name}-${each.key}-to-${var.primary_region}" })
}

resource "aws_vpc_peering_connection_accepter" "primary" {
  for_each                  = local.secondary
  region                    = var.primary_region
  vpc_peering_connection_id = aws_vpc_peering_connection.to_primary[each.key].id
  auto_accept               = true
  tags                      = merge(local.tags, { Name = "${var.name}-${each.key}-to-${var.primary_region}" })
}

locals {
  # (region, route table) pairs on both sides of each peering.
  routes_to_primary = merge([
    for region in keys(local.secondary) : {
      for az, table in module.network[region].private_route_table_ids : "${region}/${az}" => {
        region = region
        table  = table
      }
    }
  ]...)
  routes_from_primary = merge([
    for region in keys(local.secondary) : {
      for az, table in module.network[var.primary_region].private_route_table_ids : "${region}/${az}" => {
        region = region
        table  = table
      }
    }
  ]...)
}

resource "aws_route" "to_primary" {
  for_each                  = local.routes_to_primary
  region                    = each.value.region
  route_table_id            = each.value.table
  destination_cidr_block    = module.network[var.primary_region].cidr_block
  vpc_peering_connection_id = aws_vpc_peering_connection.to_primary[each.value.region].id

  depends_on = [aws_vpc_peering_connection_accepter.primary]
}

resource "aws_route" "from_primary" {
  for_each                  = local.routes_from_primary
  region                    = var.primary_region
  route_table_id            = each.value.table
  destination_cidr_block    = module.network[each.value.region].cidr_block
  vpc_peering_connection_id = aws_vpc_peering_connection.to_primary[each.value.region].id

  depends_on = [aws_vpc_peering_connection_accepter.primary]
}

# ---- servers in every region -----------------------------------------------------------

module "nodes" {
  source   = "./modules/nodes"
  for_each = var.regions

  name                  = var.name
  region                = each.key
  site                  = local.sites[each.key]
  vpc_id                = module.network[each.key].vpc_id
  vpc_cidr              = module.network[each.key].cidr_block
  public_subnet_ids     = module.network[each.key].public_subnet_ids
  private_subnet_ids    = module.network[each.key].private_subnet_ids
  container_image       = var.container_image
  instance_type         = each.value.instance_type
  nameservers           = each.value.nameservers
  probers               = each.value.probers
  ami_ssm_parameter     = var.ami_ssm_parameter
  instance_profile_name = aws_iam_instance_profile.servers.name
  secrets_region        = var.primary_region
  database_secret_arn   = aws_db_instance.this.master_user_secret[0].secret_arn
  runtime_secret_arn    = aws_secretsmanager_secret.runtime.arn
  database_host         = aws_db_instance.this.address
  database_port         = aws_db_instance.this.port
  database_name         = aws_db_instance.this.db_name
  redis_prefix          = var.redis_prefix
  http_allowed_cidrs    = var.http_allowed_cidrs
  api_certificate_arn   = each.key == var.primary_region ? var.api_certificate_arn : null
  api_allowed_cidrs     = var.api_allowed_cidrs
  deletion_protection   = var.deletion_protection
  tags                  = local.tags
}
