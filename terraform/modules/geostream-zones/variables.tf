variable "zones_dir" {
  type        = string
  description = "Folder of GeoStream zone files (<zone>.yaml, one zone per file), as `geostream-dns check` reads them."
}

variable "force" {
  type        = bool
  description = "Send ?force=true: allow a change that deletes or changes more than 30% of a zone's records (the API refuses it otherwise)."
  default     = false
}
