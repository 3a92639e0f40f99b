"""No key or password on the command line, and none in anything the ingester prints, logs or records.

The API key comes from TILED_API_KEY only; a Tiled URI carrying one (or a password) is refused
before anything is opened. Whatever fails afterwards (a wrong key, a server gone, a watcher's
JSON log, the report, `status`) never shows the key."""

from __future__ import annotations

import json

import pytest

from ingester.logs import register_secret, scrub
from support.cli import run_ingester, start_ingester
from support.runfiles import write_run_file
from support.servers import free_port

SECRET = "s3cretKEY0987"


@pytest.mark.parametrize(
    "uri",
    [
        f"http://127.0.0.1:1/api/v1?api_key={SECRET}",
        f"http://user:{SECRET}@127.0.0.1:1/api",
        f"http://h/x?token={SECRET}",
    ],
)
@pytest.mark.parametrize("command", ["ingest-dir", "watch", "status", "retry"])
def test_a_uri_carrying_a_secret_is_refused_pointing_to_the_variable(uri, command, tmp_path):
    args = [command, tmp_path] if command in ("ingest-dir", "watch") else [command]
    result = run_ingester(*args, "--tiled-uri", uri, "--ledger", f"sqlite:///{tmp_path / 'l.db'}", timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "TILED_API_KEY" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert SECRET not in result.stdout + result.stderr


def test_the_key_is_in_no_output_when_the_server_refuses_or_is_gone(server, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    write_run_file(spool / "run.jsonl")
    env = {"TILED_API_KEY": SECRET, "TILED_RETRY_ATTEMPTS": "1"}
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    refused = run_ingester("ingest-dir", spool, "--tiled-uri", server.uri, "--ledger", ledger, "--report",
                           tmp_path / "r.json", env=env)  # fmt: skip  # a key the server does not know
    gone = run_ingester("ingest-dir", spool, "--tiled-uri", f"http://127.0.0.1:{free_port()}/api", "--ledger", ledger,
                        env=env)  # fmt: skip
    status = run_ingester("status", "--tiled-uri", server.uri, "--ledger", ledger, "--failed", env=env)
    for result in (refused, gone, status):
        assert SECRET not in result.stdout + result.stderr
    assert refused.returncode == 2 and gone.returncode == 2, refused.stderr + gone.stderr
    assert "cannot open the target" in refused.stderr and "cannot open the target" in gone.stderr
    assert not (tmp_path / "r.json").exists() or SECRET not in (tmp_path / "r.json").read_text()


def test_a_watchers_json_log_never_holds_the_key(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    env = {"TILED_API_KEY": SECRET}
    watcher = start_ingester(tmp_path / "watch.log", "watch", spool, "--tiled-uri", f"http://127.0.0.1:{free_port()}",
                             "--ledger", f"sqlite:///{tmp_path / 'ledger.db'}", "--log-json", env=env)  # fmt: skip
    try:
        assert watcher.wait(timeout=120) == 2  # the target cannot be opened
    finally:
        watcher.kill()
    text = (tmp_path / "watch.log").read_text()
    assert "cannot open the target" in text and SECRET not in text


def test_scrub_masks_what_urls_and_registered_keys_carry():
    register_secret("another-key-42")
    text = "GET http://u:pw@h:8/api?api_key=abc&x=1 failed with another-key-42 in a header"
    assert scrub(text) == "GET http://u:***@h:8/api?api_key=***&x=1 failed with *** in a header"
    assert json.dumps(scrub("token=zzz")) == '"token=***"'
