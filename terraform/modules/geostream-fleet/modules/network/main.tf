# One region's network: a VPC with a public and a private subnet per
# availability zone, a NAT gateway per zone (nameservers and probers reach the
# internet: probes, the container registry, AWS APIs), flow logs encrypted with
# the region's own KMS key, and a default security group that allows nothing.

# The zones are named, not discovered: a zone AWS adds later changes nothing here.
data "aws_availability_zones" "this" {
  region = var.region
  state  = "available"

  filter {
    name   = "zone-name"
    values = var.availability_zones
  }

  lifecycle {
    postcondition {
      condition     = length(self.names) == length(var.availability_zones)
      error_message = "Some of ${join(", ", var.availability_zones)} are not available zones of ${var.region}."
    }
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  azs = sort(data.aws_availability_zones.this.names)
  # /20s out of the VPC's block: public ones first, private ones from the 8th on.
  public_cidrs  = { for i, az in local.azs : az => cidrsubnet(var.cidr_block, 4, i) }
  private_cidrs = { for i, az in local.azs : az => cidrsubnet(var.cidr_block, 4, i + 8) }
  log_group     = "/geostream/${var.name}/${var.region}/vpc-flow-logs"
}

# ---- KMS key for this region's logs ----------------------------------------

resource "aws_kms_key" "logs" {
  region                  = var.region
  description             = "${var.name} ${var.region}: CloudWatch log encryption"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncrypts"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${data.aws_partition.current.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:/geostream/${var.name}/*"
          }
        }
      },
    ]
  })
  tags = var.tags
}

# ---- VPC ----------------------------------------------------------------------

resource "aws_vpc" "this" {
  region               = var.region
  cidr_block           = var.cidr_block
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(var.tags, { Name = "${var.name}-${var.region}" })
}

# The default security group of the VPC allows nothing; every resource gets its own.
resource "aws_default_security_group" "this" {
  region = var.region
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-${var.region}-default-closed" })
}

resource "aws_cloudwatch_log_group" "flow_logs" {
  region            = var.region
  name              = local.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.logs.arn
  tags              = var.tags
}

resource "aws_iam_role" "flow_logs" {
  name = "${var.name}-${var.region}-flow-logs"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "vpc-flow-logs.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "flow_logs" {
  name = "write-flow-logs"
  role = aws_iam_role.flow_logs.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
      Resource = ["${aws_cloudwatch_log_group.flow_logs.arn}:*"]
    }]
  })
}

resource "aws_flow_log" "this" {
  region               = var.region
  vpc_id               = aws_vpc.this.id
  traffic_type         = "ALL"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow_logs.arn
  iam_role_arn         = aws_iam_role.flow_logs.arn
  tags                 = var.tags
}

# ---- subnets and routes ----------------------------------------------------------

resource "aws_internet_gateway" "this" {
  region = var.region
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-${var.region}" })
}

resource "aws_subnet" "public" {
  for_each                = local.public_cidrs
  region                  = var.region
  vpc_id                  = aws_vpc.this.id
  availability_zone       = each.key
  cidr_block              = each.value
  map_public_ip_on_launch = false
  tags                    = merge(var.tags, { Name = "${var.name}-${each.key}-public" })
}

resource "aws_subnet" "private" {
  for_each          = local.private_cidrs
  region            = var.region
  vpc_id            = aws_vpc.this.id
  availability_zone = each.key
  cidr_block        = each.value
  tags              = merge(var.tags, { Name = "${var.name}-${each.key}-private" })
}

resource "aws_route_table" "public" {
  region = var.region
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-${var.region}-public" })
}

resource "aws_route" "public_internet" {
  region                 = var.region
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  for_each       = aws_subnet.public
  region         = var.region
  subnet_id      = each.value.id
  route_table_id = aws_route_table.public.id
}

resource "aws_eip" "nat" {
  #checkov:skip=CKV2_AWS_19:This address belongs to a NAT gateway, not to an instance.
  for_each = local.public_cidrs
  region   = var.region
  domain   = "vpc"
  tags     = merge(var.tags, { Name = "${var.name}-${each.key}-nat" })
}

resource "aws_nat_gateway" "this" {
  for_each      = aws_subnet.public
  region        = var.region
  subnet_id     = each.value.id
  allocation_id = aws_eip.nat[each.key].id
  tags          = merge(var.tags, { Name = "${var.name}-${each.key}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "private" {
  for_each = aws_subnet.private
  region   = var.region
  vpc_id   = aws_vpc.this.id
  tags     = merge(var.tags, { Name = "${var.name}-${each.key}-private" })
}

resource "aws_route" "private_internet" {
  for_each               = aws_route_table.private
  region                 = var.region
  route_table_id         = each.value.id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[each.key].id
}

resource "aws_route_table_association" "private" {
  for_each       = aws_subnet.private
  region         = var.region
  subnet_id      = each.value.id
  route_table_id = aws_route_table.private[each.key].id
}
