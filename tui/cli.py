"""The `cliniko-switch` command line (DESIGN.md section 2).

Each command imports its engine lazily, so `cliniko-switch sandbox` or `download` never pays
for Textual's import, and the engine packages stay free of any UI import.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn

import click

# Exit codes (DESIGN.md section 2).
EXIT_OK = 0
EXIT_VERIFY_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 3
EXIT_CRASH = 70


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _refuse(exc: Exception, code: int = EXIT_BAD_INPUT) -> int:
    """Print an engine error (and its advice) for a `main()` to return: inside the event loop
    `sys.exit` would surface as an exception group with a traceback."""
    click.echo(f"error: {exc}", err=True)
    hint = getattr(exc, "hint", "")
    if hint and hint not in str(exc):
        click.echo(f"  {hint}", err=True)
    return code


def _emit_json(document: dict[str, Any]) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=False, default=str))


def _key_and_url(region: str | None, api_url: str | None) -> tuple[Any, str]:
    """The key (env or hidden prompt, never an argument) and the API base URL for its shard."""
    from engine.cliniko import SetupError, base_url_for, check_region, key_from_env_or_prompt

    prompt: Callable[[str], str] | None = None
    if not sys.stdin.isatty():
        # No terminal to ask on: only the environment can supply the key.
        def prompt(_label: str) -> str:
            _fail("set CLINIKO_API_KEY (no terminal to ask for the key on)")

    try:
        key = key_from_env_or_prompt(prompt)
        if region:
            check_region(key, region)
        return key, base_url_for(key.shard, api_url)
    except SetupError as exc:
        _fail(str(exc))


def _run_async(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run the engine; SIGTERM and SIGHUP (a dropped SSH session) stop it like Ctrl-C does."""
    import signal

    import anyio

    async def guarded() -> int:
        async with anyio.create_task_group() as tg:
            outcome: list[int] = []

            async def watch() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
                    async for _signum in signals:
                        tg.cancel_scope.cancel()
                        return

            async def body() -> None:
                outcome.append(await main())
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            tg.start_soon(body)
        if not outcome:
            raise KeyboardInterrupt
        return outcome[0]

    try:
        return anyio.run(guarded)
    except KeyboardInterrupt:
        click.echo(
            "interrupted: the staging file keeps every committed page; run the same command "
            "again to resume",
            err=True,
        )
        return EXIT_INTERRUPTED


def _parse_rate(spec: str) -> tuple[int, float]:
    from engine.cliniko import parse_rate

    try:
        return parse_rate(spec)
    except ValueError as exc:
        _fail(f"--rate-limit: {exc}")


def api_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--rate-limit",
        default="200/60",
        show_default=True,
        help="Request budget N/SECONDS (Cliniko allows 200 per minute).",
    )(func)
    func = click.option(
        "--api-url",
        default=None,
        help="Override the shard's base URL (plain http only to loopback, for the sandbox).",
    )(func)
    func = click.option(
        "--region",
        default=None,
        help="The shard you expect (au1, uk1, ...); checked against the key.",
    )(func)
    return click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")(
        func
    )


def _run_app(config: Any) -> int:
    """Run the full-screen app; its exit code (a crash: 70, after the terminal is restored)."""
    from tui.app import SwitchApp

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        _fail(
            "the full-screen app needs a terminal; without one, use the preview, download, "
            "plan and load commands (or `demo --headless`)"
        )
    app = SwitchApp(config)
    code = app.run()
    if app.crash_log_path is not None or app.return_code not in (None, 0):
        return app.return_code or EXIT_CRASH
    return code or EXIT_OK


@click.group(invoke_without_command=True)
@click.version_option(package_name="cliniko-switch")
@click.option(
    "--staging",
    "staging_path",
    default="cliniko-staging.sqlite",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Wizard: the staging file to download into.",
)
@click.option(
    "--target",
    "target_url",
    default="sqlite:///clinic.db",
    show_default=True,
    help="Wizard: the clinic store to load into.",
)
@click.option("--region", default=None, help="Wizard: the shard to pre-select (au1, uk1, ...).")
@click.option("--api-url", default=None, help="Wizard: override the shard's base URL.")
@click.option("--rate-limit", default="200/60", show_default=True, help="Wizard: request budget.")
@click.pass_context
def cli(
    ctx: click.Context,
    staging_path: Path,
    target_url: str,
    region: str | None,
    api_url: str | None,
    rate_limit: str,
) -> None:
    """Copy a clinic out of Cliniko (read-only) into a MyNewClinic clinic.

    With no command: the full-screen wizard (key, preview and selection, download, review,
    load, summary). The API key is read from CLINIKO_API_KEY or typed into the wizard's masked
    field (or asked for with hidden input by the other commands); it is never a command-line
    argument and is never written anywhere.
    """
    if ctx.invoked_subcommand is not None:
        return
    from engine.cliniko import SetupError, validate_api_url
    from tui.state import WizardConfig

    if api_url is not None:
        try:
            validate_api_url(api_url)
        except SetupError as exc:
            _fail(f"--api-url: {exc}")
    config = WizardConfig(
        api_url=api_url,
        rate_limit=_parse_rate(rate_limit),
        staging_path=staging_path,
        target_url=target_url,
        region=region,
    )
    sys.exit(_run_app(config))


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def review(path: Path) -> None:
    """Browse a staging file in the full-screen app, offline: no key, no network, no writes."""
    from engine.api import StagingError, open_for_review
    from tui.state import WizardConfig

    try:  # a file that cannot be reviewed is refused before the screen takes over
        with open_for_review(path):
            pass
    except StagingError as exc:
        _fail(str(exc))
    sys.exit(_run_app(WizardConfig(review_only=path, staging_path=path)))


@cli.command()
@click.option("--port", type=int, default=8765, show_default=True, help="Port on 127.0.0.1.")
@click.option(
    "--size",
    type=click.Choice(["tiny", "small", "medium", "large"]),
    default="small",
    show_default=True,
    help="Clinic size: tiny ~100 records, small ~5,000, medium ~100,000, large ~1,000,000.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same clinic.")
@click.option(
    "--rate-limit",
    default="200/60",
    show_default=True,
    help="Requests per window per key, N/SECONDS (e.g. 200/6 for a faster clock).",
)
@click.option("--latency-ms", type=float, default=0.0, show_default=True)
@click.option(
    "--faults",
    default="",
    help="Injected faults, e.g. 5xx=0.05,reset=0.01,slow=0.02,burst429=0.01",
)
@click.option("--shard", default="au1", show_default=True, help="The shard this sandbox plays.")
def sandbox(
    port: int,
    size: str,
    seed: int,
    rate_limit: str,
    latency_ms: float,
    faults: str,
    shard: str,
) -> None:
    """Serve a synthetic Cliniko on 127.0.0.1 (for tests, demos and training)."""
    from sandbox.serve import serve_cli

    serve_cli(
        port=port,
        size=size,
        seed=seed,
        rate_limit=rate_limit,
        latency_ms=latency_ms,
        faults=faults,
        shard=shard,
    )


@cli.command()
@api_options
def preview(as_json: bool, region: str | None, api_url: str | None, rate_limit: str) -> None:
    """Connect and print the count of each resource (one request per list)."""
    from engine.cliniko import ClinikoError
    from engine.preview import preview as run_preview
    from tui.textout import TextProgress

    key, base_url = _key_and_url(region, api_url)
    rate = _parse_rate(rate_limit)

    async def main() -> int:
        try:
            result = await run_preview(key, base_url=base_url, rate_limit=rate, sink=TextProgress())
        except ClinikoError as exc:
            return _refuse(exc)
        if as_json:
            _emit_json(result.to_json())
        else:
            click.echo(
                f"account {result.account_name!r} on {result.shard}: about "
                f"{result.estimated_requests} requests, {result.estimated_minutes:.1f} minutes "
                f"at {result.rate_per_minute:.0f} per minute",
                err=True,
            )
        return EXIT_OK

    sys.exit(_run_async(main))


@cli.command()
@click.option(
    "--staging", "staging_path", required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option("--only", default=None, help="Comma-separated parts or resources (default: all).")
@click.option("--parallel", default=16, show_default=True, help="Parallel walks per large list.")
@api_options
def download(
    staging_path: Path,
    only: str | None,
    parallel: int,
    as_json: bool,
    region: str | None,
    api_url: str | None,
    rate_limit: str,
) -> None:
    """Download into the staging file; resume an interrupted run; top up a complete one."""
    from engine.cliniko import ClinikoError, NetworkError
    from engine.extract import DownloadOptions, download_result_json
    from engine.extract import download as run_download
    from engine.resources import ALL_PARTS, UnknownSelection, resources_for
    from staging import StagingError
    from tui.textout import TextProgress

    selection = tuple(s.strip() for s in only.split(",") if s.strip()) if only else ALL_PARTS
    try:
        resources_for(selection)
    except UnknownSelection as exc:
        _fail(str(exc))
    key, base_url = _key_and_url(region, api_url)
    opts = DownloadOptions(
        staging_path=staging_path,
        base_url=base_url,
        selection=selection,
        rate_limit=_parse_rate(rate_limit),
        parallel=parallel,
    )

    async def main() -> int:
        try:
            result = await run_download(key, opts, sink=TextProgress())
        except StagingError as exc:
            return _refuse(exc)
        except NetworkError as exc:
            return _refuse(exc, EXIT_INTERRUPTED)
        except ClinikoError as exc:
            return _refuse(exc)
        if as_json:
            _emit_json(download_result_json(result))
        return EXIT_OK if result.outcome == "complete" else EXIT_VERIFY_FAILED

    sys.exit(_run_async(main))


@cli.command()
@click.option(
    "--staging",
    "staging_path",
    default="demo-staging.sqlite",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option("--target", default="sqlite:///clinic.db", show_default=True)
@click.option(
    "--size", type=click.Choice(["tiny", "small", "medium"]), default="small", show_default=True
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--headless",
    is_flag=True,
    help="No full-screen wizard: download, plan, load and verify with progress on stderr "
    "(the default when there is no terminal).",
)
def demo(staging_path: Path, target: str, size: str, seed: int, headless: bool) -> None:
    """The wizard against the built-in Cliniko sandbox, loading into a local clinic file.

    The sandbox runs on 127.0.0.1 for the length of the command, on a clock thirty times faster
    than Cliniko's (200 requests per 2 s), with a key made up for it; it stops on exit.
    """
    from engine.cliniko import parse_key
    from sandbox.runner import running_sandbox

    rate = (200, 2.0)
    interactive = not headless and sys.stdin.isatty() and sys.stdout.isatty()
    click.echo(f"starting the Cliniko sandbox ({size} clinic, seed {seed}) ...", err=True)
    with running_sandbox(size=size, seed=seed, rate_limit=rate) as handle:
        if interactive:
            from tui.state import WizardConfig

            config = WizardConfig(
                api_url=handle.base_url,
                rate_limit=rate,
                staging_path=staging_path,
                target_url=target,
                demo=True,
                demo_key=handle.api_key,
            )
            code = _run_app(config)
        else:
            click.echo(f"sandbox on {handle.base_url}", err=True)
            code = _demo_headless(parse_key(handle.api_key), handle.base_url, rate, staging_path)
            if code == EXIT_OK:
                code = _demo_load(staging_path, target)
    sys.exit(code)


def _demo_headless(key: Any, base_url: str, rate: tuple[int, float], staging_path: Path) -> int:
    from engine.extract import DownloadOptions
    from engine.extract import download as run_download
    from tui.textout import TextProgress

    opts = DownloadOptions(staging_path=staging_path, base_url=base_url, rate_limit=rate)

    async def main() -> int:
        result = await run_download(key, opts, sink=TextProgress())
        return EXIT_OK if result.outcome == "complete" else EXIT_VERIFY_FAILED

    return _run_async(main)


def _demo_load(staging_path: Path, target: str) -> int:
    """The demo's load phase: plan, load without asking (it is a rehearsal), verify."""
    from engine.load import load as run_load
    from engine.skip_report import write_skip_report

    sink = _load_sink()
    the_plan = _plan_or_fail(staging_path, target, None, sink)
    for line in the_plan.summary_lines():
        click.echo(line, err=True)
    result = run_load(the_plan, target, sink=sink)
    for line in result.verification.summary_lines():
        click.echo(line, err=True)
    report = staging_path.with_name("demo-skipped.csv")
    rows = write_skip_report(result, report)
    click.echo(f"{rows} skipped record(s), each with its reason, listed in {report}", err=True)
    return EXIT_OK if result.ok else EXIT_VERIFY_FAILED


# --- plan and load (engine/plan.py, engine/load.py) ------------------------------------------


def _selection(only: str | None) -> tuple[str, ...] | None:
    if not only:
        return None
    from engine.resources import UnknownSelection, close_parts

    parts = tuple(s.strip() for s in only.split(",") if s.strip())
    try:
        close_parts(parts)
    except UnknownSelection as exc:
        _fail(str(exc))
    return parts


def _load_sink(quiet: bool = False) -> Callable[[Any], None]:
    """Progress on stderr: one line per kind as planning and loading finish it."""
    from engine.events import LoadProgress
    from tui.textout import TextProgress

    text = TextProgress(quiet=quiet)
    shown: set[tuple[str, str]] = set()

    def sink(event: Any) -> None:
        if isinstance(event, LoadProgress):
            key = (event.phase, event.record_kind)
            if quiet or event.done < event.total or key in shown or not event.total:
                return
            shown.add(key)
            click.echo(f"  {event.phase:<5} {event.record_kind:<18} {event.done:>9}", err=True)
        else:
            text(event)

    return sink


def _plan_or_fail(
    staging_path: Path, target_url: str, parts: tuple[str, ...] | None, sink: Any
) -> Any:
    from engine.plan import plan as make_plan
    from engine.resources import UnknownSelection
    from staging import StagingError
    from target import TargetError

    try:
        return make_plan(staging_path, target_url, parts, sink=sink)
    except (StagingError, TargetError, UnknownSelection) as exc:
        _fail(str(exc))


staging_option = click.option(
    "--staging",
    "staging_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The staging file a download wrote.",
)
target_option = click.option(
    "--target",
    "target_url",
    default="sqlite:///clinic.db",
    show_default=True,
    help=(
        "The clinic store: sqlite:///relative.db, sqlite:////absolute.db, a file path, or "
        "postgresql://user@host/database?schema=clinic (password from PGPASSWORD or ~/.pgpass)."
    ),
)
only_option = click.option(
    "--only", default=None, help="Comma-separated parts to load (default: all staged parts)."
)


@cli.command("plan")
@staging_option
@target_option
@only_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def plan_command(staging_path: Path, target_url: str, only: str | None, as_json: bool) -> None:
    """Show the diff a load would apply to the clinic, changing nothing."""
    the_plan = _plan_or_fail(staging_path, target_url, _selection(only), _load_sink())
    for line in the_plan.summary_lines():
        click.echo(line, err=True)
    if as_json:
        _emit_json(the_plan.to_json())
    sys.exit(EXIT_OK)


@cli.command("load")
@staging_option
@target_option
@only_option
@click.option("--yes", is_flag=True, help="Load without asking for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option(
    "--skipped-csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the skipped records (kind, Cliniko id, reason) to this CSV file.",
)
def load_command(
    staging_path: Path,
    target_url: str,
    only: str | None,
    yes: bool,
    as_json: bool,
    skipped_csv: Path | None,
) -> None:
    """Apply the plan to the clinic in batches, then verify counts and balances."""
    from engine.load import load as run_load
    from engine.skip_report import write_skip_report
    from staging import StagingError
    from target import TargetError

    if skipped_csv is not None:
        _check_writable(skipped_csv, "--skipped-csv")
    sink = _load_sink()
    the_plan = _plan_or_fail(staging_path, target_url, _selection(only), sink)
    for line in the_plan.summary_lines():
        click.echo(line, err=True)
    if not yes:
        if not sys.stdin.isatty():
            _fail("no terminal to confirm the load on; pass --yes to load without asking")
        if not click.confirm(f"Load {the_plan.writes()} change(s) into the clinic?", err=True):
            click.echo("cancelled: nothing was loaded", err=True)
            sys.exit(EXIT_INTERRUPTED)
    try:
        result = run_load(the_plan, target_url, sink=sink)
    except (StagingError, TargetError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        click.echo(
            "interrupted: every committed batch is in the clinic with its links; run the same "
            "command again to finish",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    for line in result.verification.summary_lines():
        click.echo(line, err=True)
    if skipped_csv is not None:
        try:
            rows = write_skip_report(result, skipped_csv)
        except OSError as exc:
            _fail(f"cannot write {skipped_csv}: {exc.strerror}")
        click.echo(f"{rows} skipped record(s) listed in {skipped_csv}", err=True)
    if as_json:
        _emit_json(result.to_json())
    sys.exit(EXIT_OK if result.ok else EXIT_VERIFY_FAILED)


def _check_writable(path: Path, option: str) -> None:
    """Refuse a report path that cannot be written before any work is done (not after a
    load has changed the clinic)."""
    import os

    folder = path.parent if str(path.parent) else Path()
    if path.is_dir():
        _fail(f"{option}: cannot write {path}: it is a folder; give a file name")
    if not folder.is_dir():
        _fail(f"{option}: cannot write {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        _fail(f"{option}: cannot write {path}: no permission to write in {folder}")


def main() -> None:
    cli()
