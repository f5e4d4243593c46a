"""``fleetgauge agent``: the per-worker daemon (extra ``agent``)."""

from __future__ import annotations

import argparse
import logging
import sys

NAME = "agent"
EXTRAS = ("agent",)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``agent`` command and its flags (one per setting of the agent's config)."""
    parser = sub.add_parser(
        "agent",
        help="per-worker daemon: sample resources, take pushed model metrics, write them to"
        " the store, serve /metrics",
        description="The per-worker daemon. Every --interval it samples CPU, memory, disks,"
        " network, GPUs (NVML) and container limits; on --push-port it takes the values"
        " models record (POST /v1/metrics and /v1/events, or the fleetgauge.sdk module); it writes"
        " the points to the store in batches, keeps them in an on-disk spool while the store"
        " is down and replays them in order, and serves the latest values on /metrics for"
        " Prometheus. SIGTERM or SIGINT flush what is buffered and exit 0.",
        epilog="Every flag can also be set in a TOML file (--config, keys as in"
        " --print-config) or by an environment variable FLEETGAUGE_<FLAG> (for example"
        " FLEETGAUGE_INTERVAL=5, FLEETGAUGE_TAGS=team=ml,rack=b2; the store is"
        " FLEETGAUGE_STORE). Precedence: flag > environment > file > default.",
    )
    _add_agent_args(parser)


def _add_agent_args(parser: argparse.ArgumentParser) -> None:
    from fleetgauge.agent.config import CONFIG_ENV, SETTINGS

    parser.add_argument(
        "--config", metavar="FILE", help=f"TOML settings file (default: ${CONFIG_ENV} if set)"
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings (tokens redacted) as TOML and exit",
    )
    for s in SETTINGS:
        if s.repeat_flag:
            parser.add_argument(
                s.repeat_flag, dest=s.name, action="append", metavar=s.metavar, help=s.help
            )
        elif s.name == "include_loopback":
            parser.add_argument(s.flag, action="store_const", const=True, help=s.help)
        else:
            parser.add_argument(s.flag, metavar=s.metavar, help=s.help)


def run(args: argparse.Namespace) -> int:
    """Run the agent until SIGTERM or SIGINT (or print its settings)."""
    from fleetgauge.agent.config import SETTINGS, load_config, render_config

    flags = {s.name: getattr(args, s.name) for s in SETTINGS}
    config = load_config(flags, config_file=args.config)
    if args.print_config:
        sys.stdout.write(render_config(config))
        return 0
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if config.log_level.lower() != "debug":  # one line per event: not one per job run
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    from prometheus_client import disable_created_metrics

    from fleetgauge.agent.daemon import Agent

    disable_created_metrics()  # no *_created series: a fifth less to render on every scrape
    Agent(config).run()
    return 0
