"""Routing: which values of a routed record a client gets.

`router.Router` walks a record's rules, one matcher module per rule kind
(`geos`, `subnets`, `nearest`, `latency`, `catchall`, all behind
`rule.Matcher`), then
the named pool's fallback chain (`pools`), under the health view of a
`context.RouteContext`. `explain` walks the same matchers with a trace.
"""
