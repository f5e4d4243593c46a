"""deploy/kubernetes/agent-daemonset.yaml: the agent on every node, reporting the node.

No cluster here (kubectl needs one even for a dry run): the manifest is read as YAML and
every setting it gives the agent goes through the agent's own config loader.
"""

from __future__ import annotations

import stack_files as sf
import yaml

from fleetgauge.agent.config import SETTINGS, load_config
from fleetgauge.cli import build_parser
from fleetgauge.stores.influxdb import TOKEN_ENV

AGENT_ENV = {s.env for s in SETTINGS} | {TOKEN_ENV}


def test_the_daemonset_reports_each_node_with_tokens_from_a_secret() -> None:
    manifest = yaml.safe_load((sf.ROOT / "deploy/kubernetes/agent-daemonset.yaml").read_text())
    assert manifest["kind"] == "DaemonSet" and manifest["apiVersion"] == "apps/v1"
    pod = manifest["spec"]["template"]["spec"]
    assert pod["hostPID"] is True and pod["hostNetwork"] is True
    (container,) = pod["containers"]
    assert container["image"] == f"fleetgauge:{sf.version()}"
    assert build_parser().parse_args(container["args"]).command == "agent"
    env = {e["name"]: e for e in container["env"]}
    assert set(env) <= AGENT_ENV, set(env) - AGENT_ENV
    for name in env:
        if name.endswith("_TOKEN"):
            assert "secretKeyRef" in env[name]["valueFrom"], name
    plain = {k: e.get("value", f"from-{k.lower()}") for k, e in env.items()}
    config = load_config({}, plain)
    assert "container" not in config.collectors  # the pod has limits; the node does not
    host_paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert host_paths[mounts[config.host_proc]["name"]] == "/proc"
    assert host_paths[mounts[config.host_root]["name"]] == "/"
    assert mounts[config.host_proc]["readOnly"] and mounts[config.host_root]["readOnly"]
    assert container["resources"]["limits"]["memory"] and container["resources"]["limits"]["cpu"]
    image_user = next(a for op, a in sf.dockerfile() if op == "USER").split(":")[0]
    assert pod["securityContext"]["runAsUser"] == int(image_user)
    assert container["livenessProbe"]["exec"]["command"] == [
        "python",
        "-m",
        "fleetgauge.agent.probe",
    ]
