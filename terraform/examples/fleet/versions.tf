terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0.0"
    }
  }
}

# One provider for every region: the module sets `region` on each resource.
provider "aws" {
  region = var.primary_region
}
