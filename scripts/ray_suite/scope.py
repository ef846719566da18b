"""The fixtures of Ray's conftest that need Ray's internals (multi-node clusters, GCS, dashboards, Redis, the
`ray start` CLI, Ray Client): shared by conftest.py (each raises OutOfScopeError) and run.py (their tests are
out of scope)."""

OUT_OF_SCOPE_FIXTURES = {
    "ray_start_cluster": "multi-node cluster (ray.cluster_utils.Cluster)",
    "ray_start_cluster_enabled": "multi-node cluster (ray.cluster_utils.Cluster)",
    "ray_start_cluster_init": "multi-node cluster (ray.cluster_utils.Cluster)",
    "ray_start_cluster_head": "multi-node cluster (ray.cluster_utils.Cluster)",
    "ray_start_cluster_head_with_external_redis": "multi-node cluster + external Redis",
    "ray_start_cluster_head_with_env_vars": "multi-node cluster (ray.cluster_utils.Cluster)",
    "ray_start_cluster_2_nodes": "multi-node cluster (ray.cluster_utils.Cluster)",
    "start_cluster": "multi-node cluster and Ray Client",
    "ray_start_with_dashboard": "Ray dashboard",
    "make_sure_dashboard_http_port_unused": "Ray dashboard",
    "call_ray_start": "`ray start` CLI processes (GCS, raylet)",
    "call_ray_start_with_external_redis": "`ray start` CLI with external Redis",
    "call_ray_stop_only": "`ray stop` CLI",
    "init_and_serve": "Ray Client server",
    "error_pubsub": "GCS error pub/sub channel",
    "log_pubsub": "GCS log pub/sub channel",
    "start_http_proxy": "gRPC http-proxy environment of Ray's core worker",
    "external_redis": "external Redis for GCS",
    "ray_start_regular_with_external_redis": "external Redis for GCS",
    "ray_start_object_store_memory_with_external_redis": "external Redis for GCS",
    "set_override_dashboard_url": "Ray dashboard",
    "enable_mac_large_object_store": "Ray object store internals",
}
