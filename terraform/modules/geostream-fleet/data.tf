# The data tier, in the primary region: PostgreSQL and Redis, reachable from
# every region's VPC (peered) and from nothing else.

locals {
  region_cidrs = [for region, spec in var.regions : spec.cidr_block]
}

# ---- PostgreSQL ------------------------------------------------------------------------

resource "aws_security_group" "database" {
  region      = var.primary_region
  name        = "${var.name}-database"
  description = "GeoStream PostgreSQL: from the fleet's VPCs only"
  vpc_id      = module.network[var.primary_region].vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-database" })
}

resource "aws_vpc_security_group_ingress_rule" "database" {
  for_each          = toset(local.region_cidrs)
  region            = var.primary_region
  security_group_id = aws_security_group.database.id
  description       = "PostgreSQL from a fleet VPC"
  ip_protocol       = "tcp"
  from_port         = 5432
  to_port           = 5432
  cidr_ipv4         = each.value
}

resource "aws_db_subnet_group" "this" {
  region     = var.primary_region
  name       = "${var.name}-database"
  subnet_ids = module.network[var.primary_region].private_subnet_ids
  tags       = local.tags
}

resource "aws_db_parameter_group" "this" {
  region      = var.primary_region
  name_prefix = "${var.name}-postgres${var.database_engine_version}-"
  family      = "postgres${var.database_engine_version}"
  description = "GeoStream PostgreSQL: TLS only, schema changes and slow statements logged"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "500"
  }

  lifecycle {
    create_before_destroy = true
  }

  tags = local.tags
}

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${var.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "this" {
  region         = var.primary_region
  identifier     = "${var.name}-zones"
  engine         = "postgres"
  engine_version = var.database_engine_version
  instance_class = var.database_instance_class
  db_name        = "geostream"
  username       = "geostream"
  # RDS makes the password, keeps it in Secrets Manager and rotates it; the
  # servers read it from there (and pick up a rotation within minutes).
  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.data.arn

  allocated_storage     = var.database_allocated_storage
  max_allocated_storage = var.database_allocated_storage * 5
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.data.arn

  multi_az               = true
  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.database.id]
  publicly_accessible    = false
  parameter_group_name   = aws_db_parameter_group.this.name

  iam_database_authentication_enabled = true
  auto_minor_version_upgrade          = true
  backup_retention_period             = var.database_backup_retention_days
  copy_tags_to_snapshot               = true
  deletion_protection                 = var.deletion_protection
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name}-zones-final"

  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.data.arn
  performance_insights_retention_period = 7

  tags = local.tags
}

# ---- Redis -----------------------------------------------------------------------------

resource "aws_security_group" "redis" {
  region      = var.primary_region
  name        = "${var.name}-redis"
  description = "GeoStream Redis: from the fleet's VPCs only"
  vpc_id      = module.network[var.primary_region].vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-redis" })
}

resource "aws_vpc_security_group_ingress_rule" "redis" {
  for_each          = toset(local.region_cidrs)
  region            = var.primary_region
  security_group_id = aws_security_group.redis.id
  description       = "Redis from a fleet VPC"
  ip_protocol       = "tcp"
  from_port         = 6379
  to_port           = 6379
  cidr_ipv4         = each.value
}

resource "aws_elasticache_subnet_group" "this" {
  region     = var.primary_region
  name       = "${var.name}-redis"
  subnet_ids = module.network[var.primary_region].private_subnet_ids
  tags       = local.tags
}

resource "aws_cloudwatch_log_group" "redis" {
  region            = var.primary_region
  name              = "/geostream/${var.name}/redis/slow-log"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.data.arn
  tags              = local.tags
}

resource "aws_elasticache_replication_group" "this" {
  region                     = var.primary_region
  replication_group_id       = "${var.name}-cache"
  description                = "GeoStream DNS: shared answer cache, health and fleet state"
  engine                     = "redis"
  engine_version             = var.redis_engine_version
  node_type                  = var.redis_node_type
  port                       = 6379
  num_cache_clusters         = 2
  automatic_failover_enabled = true
  multi_az_enabled           = true
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [aws_security_group.redis.id]

  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.data.arn
  transit_encryption_enabled = true
  auth_token                 = var.redis_auth_token
  auto_minor_version_upgrade = true
  snapshot_retention_limit   = 1

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.redis.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }

  tags = local.tags
}

# ---- the servers' secrets ------------------------------------------------------------

resource "aws_secretsmanager_secret" "runtime" {
  #checkov:skip=CKV2_AWS_57:Holds the Redis AUTH token and the API token, both set from Terraform variables; they are rotated by changing the variables (the servers pick the new values up within minutes), not by a rotation Lambda.
  region                  = var.primary_region
  name_prefix             = "${var.name}-runtime-"
  description             = "GeoStream DNS: REDIS_URL and GEOSTREAM_API_TOKEN of the fleet's servers"
  kms_key_id              = aws_kms_key.data.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "runtime" {
  region    = var.primary_region
  secret_id = aws_secretsmanager_secret.runtime.id
  secret_string = jsonencode({
    redis_url = "rediss://:${urlencode(var.redis_auth_token)}@${aws_elasticache_replication_group.this.primary_endpoint_address}:6379/0"
    api_token = var.api_token
  })
}

# ---- the servers' IAM role -------------------------------------------------------------

data "aws_iam_policy_document" "servers_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "servers" {
  name               = "${var.name}-servers"
  assume_role_policy = data.aws_iam_policy_document.servers_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "servers" {
  statement {
    sid       = "ReadFleetSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.runtime.arn, aws_db_instance.this.master_user_secret[0].secret_arn]
  }

  statement {
    sid       = "DecryptFleetSecrets"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.data.arn]
  }
}

resource "aws_iam_role_policy" "servers" {
  name   = "read-fleet-secrets"
  role   = aws_iam_role.servers.id
  policy = data.aws_iam_policy_document.servers.json
}

# Session Manager instead of SSH: no port 22 anywhere.
resource "aws_iam_role_policy_attachment" "servers_ssm" {
  role       = aws_iam_role.servers.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "servers" {
  name = "${var.name}-servers"
  role = aws_iam_role.servers.name
  tags = local.tags
}
