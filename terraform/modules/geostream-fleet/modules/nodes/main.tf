# One region's servers: nameservers in an auto-scaling group behind a network
# load balancer that carries DNS over UDP and TCP on port 53 (to 8053 on the
# instances, a port the container's unprivileged user may bind), with an
# Elastic IP per availability zone so the addresses given to the parent zone
# never change; and probe-only servers (serve --probe-only) in the same site.

data "aws_ssm_parameter" "ami" {
  region = var.region
  name   = var.ami_ssm_parameter
}

locals {
  # Load balancer and target group names: at most 32 characters.
  short = trim(substr("${var.name}-${var.region}", 0, 28), "-")
  user_data = {
    for role, args in { nameserver = "", prober = "--probe-only" } : role => base64encode(templatefile("${path.module}/user-data.sh.tftpl", {
      role                = role
      site                = var.site
      container_image     = var.container_image
      serve_args          = args
      secrets_region      = var.secrets_region
      database_secret_arn = var.database_secret_arn
      runtime_secret_arn  = var.runtime_secret_arn
      database_host       = var.database_host
      database_port       = var.database_port
      database_name       = var.database_name
      redis_prefix        = var.redis_prefix
    }))
  }
}

# ---- security group ------------------------------------------------------------

resource "aws_security_group" "servers" {
  region      = var.region
  name        = "${var.name}-${var.region}-servers"
  description = "GeoStream DNS nameservers and probers"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-${var.region}-servers" })
}

# The load balancer keeps the client's address, so DNS comes from anywhere.
resource "aws_vpc_security_group_ingress_rule" "dns_udp" {
  region            = var.region
  security_group_id = aws_security_group.servers.id
  description       = "DNS over UDP from resolvers anywhere, through the load balancer"
  ip_protocol       = "udp"
  from_port         = 8053
  to_port           = 8053
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "dns_tcp" {
  region            = var.region
  security_group_id = aws_security_group.servers.id
  description       = "DNS over TCP from resolvers anywhere, through the load balancer"
  ip_protocol       = "tcp"
  from_port         = 8053
  to_port           = 8053
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "http_vpc" {
  region            = var.region
  security_group_id = aws_security_group.servers.id
  description       = "Load balancer health checks (/ready) from inside the VPC"
  ip_protocol       = "tcp"
  from_port         = 8080
  to_port           = 8080
  cidr_ipv4         = var.vpc_cidr
}

resource "aws_vpc_security_group_ingress_rule" "http_allowed" {
  for_each          = toset(concat(var.http_allowed_cidrs, var.api_certificate_arn == null ? [] : var.api_allowed_cidrs))
  region            = var.region
  security_group_id = aws_security_group.servers.id
  description       = "Metrics and API from an allowed network"
  ip_protocol       = "tcp"
  from_port         = 8080
  to_port           = 8080
  cidr_ipv4         = each.value
}

# Probes go to any TCP port anywhere (HTTP, HTTPS and TCP checks), as do the
# database, Redis, the container registry and AWS APIs.
resource "aws_vpc_security_group_egress_rule" "tcp" {
  region            = var.region
  security_group_id = aws_security_group.servers.id
  description       = "Health probes, PostgreSQL, Redis, registry and AWS APIs over TCP"
  ip_protocol       = "tcp"
  from_port         = 1
  to_port           = 65535
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "resolver" {
  region            = var.region
  security_group_id = aws_security_group.servers.id
  description       = "Name resolution through the VPC resolver"
  ip_protocol       = "udp"
  from_port         = 53
  to_port           = 53
  cidr_ipv4         = var.vpc_cidr
}

# ---- instances --------------------------------------------------------------------

resource "aws_launch_template" "servers" {
  for_each               = local.user_data
  region                 = var.region
  name_prefix            = "${var.name}-${var.region}-${each.key}-"
  description            = "GeoStream DNS ${each.key} in ${var.region}"
  image_id               = nonsensitive(data.aws_ssm_parameter.ami.value)
  instance_type          = var.instance_type
  user_data              = each.value
  vpc_security_group_ids = [aws_security_group.servers.id]
  update_default_version = true

  iam_instance_profile {
    name = var.instance_profile_name
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = 20
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-${var.region}-${each.key}", "geostream:role" = each.key, "geostream:site" = var.site })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = var.tags
  }

  tags = var.tags
}

resource "aws_autoscaling_group" "nameservers" {
  region                    = var.region
  name                      = "${var.name}-${var.region}-nameservers"
  min_size                  = var.nameservers
  max_size                  = var.nameservers * 2
  desired_capacity          = var.nameservers
  vpc_zone_identifier       = var.private_subnet_ids
  target_group_arns         = concat([aws_lb_target_group.dns.arn], aws_lb_target_group.api[*].arn)
  health_check_type         = "ELB"
  health_check_grace_period = 180

  launch_template {
    id      = aws_launch_template.servers["nameserver"].id
    version = aws_launch_template.servers["nameserver"].latest_version
  }

  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
  }

  dynamic "tag" {
    for_each = merge(var.tags, { Name = "${var.name}-${var.region}-nameserver" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}

resource "aws_autoscaling_group" "probers" {
  region                    = var.region
  name                      = "${var.name}-${var.region}-probers"
  min_size                  = var.probers
  max_size                  = var.probers
  desired_capacity          = var.probers
  vpc_zone_identifier       = var.private_subnet_ids
  health_check_type         = "EC2"
  health_check_grace_period = 180

  launch_template {
    id      = aws_launch_template.servers["prober"].id
    version = aws_launch_template.servers["prober"].latest_version
  }

  instance_refresh {
    strategy = "Rolling"
  }

  dynamic "tag" {
    for_each = merge(var.tags, { Name = "${var.name}-${var.region}-prober" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}

# ---- network load balancer ---------------------------------------------------------

resource "aws_eip" "nlb" {
  #checkov:skip=CKV2_AWS_19:These addresses belong to the network load balancer (the nameserver addresses), not to an instance.
  for_each = var.public_subnet_ids
  region   = var.region
  domain   = "vpc"
  tags     = merge(var.tags, { Name = "${var.name}-${each.key}-dns" })
}

resource "aws_lb" "dns" {
  #checkov:skip=CKV_AWS_91:Network load balancer access logs cover TLS listeners only; DNS over UDP/TCP would log nothing. GeoStream's query log records queries.
  region                           = var.region
  name                             = local.short
  load_balancer_type               = "network"
  internal                         = false
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.deletion_protection

  dynamic "subnet_mapping" {
    for_each = var.public_subnet_ids
    content {
      subnet_id     = subnet_mapping.value
      allocation_id = aws_eip.nlb[subnet_mapping.key].id
    }
  }

  tags = var.tags
}

resource "aws_lb_target_group" "dns" {
  region               = var.region
  name                 = "${substr(local.short, 0, 28)}-dns"
  port                 = 8053
  protocol             = "TCP_UDP"
  vpc_id               = var.vpc_id
  target_type          = "instance"
  deregistration_delay = 30

  health_check {
    protocol            = "HTTP"
    port                = "8080"
    path                = "/ready"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = var.tags
}

resource "aws_lb_listener" "dns" {
  region            = var.region
  load_balancer_arn = aws_lb.dns.arn
  port              = 53
  protocol          = "TCP_UDP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.dns.arn
  }

  tags = var.tags
}

# The /v1 API over TLS, for Terraform and operators (only with a certificate).
resource "aws_lb_target_group" "api" {
  count                = var.api_certificate_arn == null ? 0 : 1
  region               = var.region
  name                 = "${substr(local.short, 0, 28)}-api"
  port                 = 8080
  protocol             = "TCP"
  vpc_id               = var.vpc_id
  target_type          = "instance"
  deregistration_delay = 30

  health_check {
    protocol            = "HTTP"
    port                = "8080"
    path                = "/health"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = var.tags
}

resource "aws_lb_listener" "api" {
  count             = var.api_certificate_arn == null ? 0 : 1
  region            = var.region
  load_balancer_arn = aws_lb.dns.arn
  port              = 443
  protocol          = "TLS"
  certificate_arn   = var.api_certificate_arn
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api[0].arn
  }

  tags = var.tags
}
