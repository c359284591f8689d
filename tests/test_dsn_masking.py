"""Issue 17, item 5 (passwords never shown) and item 6 (`load --db` targets): every DSN form, through the CLI.

The cases are the issue's: a password given as ``?password=``, with a raw ``@`` in it, and in a libpq
key=value string; ``load --db notes.txt`` and ``load --db x.csv``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ildstudy.cli import run
from ildstudy.data.database import (duckdb_target, is_duckdb_file, load_into, mask_dsn, mask_secrets,
                                    postgres_url, write_registry_to)
from ildstudy.errors import IldStudyError, OutputError

SECRET = "Sup3r@Secr3t"  # holds a raw '@'; no word of any message contains it

# (DSN, secret it holds): every form a password can take; port 1 on 127.0.0.1 refuses connections.
FORMS = [
    (f"postgresql://u:{SECRET}@127.0.0.1:1/x", SECRET),
    ("postgresql://u:p@ss@127.0.0.1:1/x", "p@ss"),                          # the issue's command
    ("postgres://u:pa/ss?wd@127.0.0.1:1/x", "pa/ss?wd"),
    ("postgresql://u:enc%40oded@127.0.0.1:1/x", "enc%40oded"),
    ("postgresql://u@127.0.0.1:1/x?password=hunter22", "hunter22"),
    ("postgresql://u@127.0.0.1:1/x?sslmode=disable&sslpassword=keypass9&connect_timeout=2", "keypass9"),
    ("host=127.0.0.1 port=1 dbname=x user=u password=hunter22", "hunter22"),
    ("host=127.0.0.1 port=1 password='two words'", "two words"),
    ("password = spaced99 host=127.0.0.1 port=1", "spaced99"),
    (r"host=127.0.0.1 port=1 password='it\'s9'", "it's9"),
]


def _fragments(secret: str) -> list[str]:
    """The secret and its pieces around '@' (a parser splitting at the first '@' would show them)."""
    return [secret] + [part for part in secret.split("@") if len(part) >= 3 and part != secret]


@pytest.mark.parametrize("dsn, secret", FORMS)
def test_mask_dsn_hides_every_form(dsn, secret):
    shown = mask_dsn(dsn)
    for piece in _fragments(secret) + [secret.replace("@", "%40")]:
        assert piece not in shown, shown
    assert "***" in shown
    assert "127.0.0.1" in shown  # the rest stays readable


def test_mask_dsn_keeps_what_is_no_secret():
    assert mask_dsn("postgresql://me@db.example:5432/registry") == "postgresql://me@db.example:5432/registry"
    assert mask_dsn("study.duckdb") == "study.duckdb"
    assert mask_dsn("host=db.example dbname=registry") == "host=db.example dbname=registry"
    assert mask_dsn("postgresql://me:x@h/db?sslmode=require&password=y") == \
        "postgresql://me:***@h/db?sslmode=require&password=***"


def test_mask_secrets_cleans_a_driver_message():
    url = f"postgresql://u:{SECRET}@db.example/x"
    driver = (f'connection to "{postgres_url(url)}" failed; conninfo "host=db.example password={SECRET}"; '
              f"decoded {SECRET}")
    cleaned = mask_secrets(driver, url, postgres_url(url))
    for piece in _fragments(SECRET) + [SECRET.replace("@", "%40")]:
        assert piece not in cleaned
    assert "db.example" in cleaned


def test_postgres_url_keeps_a_raw_at_sign_in_the_password():
    from psycopg.conninfo import conninfo_to_dict

    url = postgres_url(f"postgresql://me:{SECRET}@db.example:5433/registry?sslmode=require")
    assert urlsplit(url).hostname == "db.example"
    params = conninfo_to_dict(url)  # libpq's own parser
    assert params["password"] == SECRET and params["host"] == "db.example" and params["port"] == "5433"
    assert params["dbname"] == "registry" and params["sslmode"] == "require"


def test_postgres_url_turns_key_value_into_the_same_connection():
    from psycopg.conninfo import conninfo_to_dict

    kv = "host=db.example port=5433 dbname=registry user=me password='a b@c' sslmode=require"
    assert conninfo_to_dict(postgres_url(kv)) == conninfo_to_dict(kv)


def test_malformed_key_value_is_refused_masked():
    with pytest.raises(IldStudyError, match="not a valid key=value") as info:
        postgres_url("host=x password='never closed9")
    assert "never closed9" not in str(info.value)


# -- through the real CLI -----------------------------------------------------------------------------

def _assert_hidden(secret: str, *texts: str) -> None:
    for text in texts:
        for piece in _fragments(secret):
            assert piece not in text, text


@pytest.mark.parametrize("dsn, secret", FORMS)
def test_run_never_shows_the_password(dsn, secret, tmp_path, capsys):
    code = run(["run", "huapaya2019", "--db", dsn, "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert "cannot connect" in captured.err
    _assert_hidden(secret, captured.out, captured.err)


@pytest.fixture(scope="module")
def small_registry(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reg") / "registry"
    assert run(["synth", "--out", str(folder), "--patients", "30", "--seed", "7"]) == 0
    return folder


@pytest.mark.parametrize("dsn, secret", FORMS[:2] + FORMS[4:8])
def test_load_never_shows_the_password(dsn, secret, small_registry, capsys):
    code = run(["load", str(small_registry), "--db", dsn])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    _assert_hidden(secret, captured.out, captured.err)


def test_the_issue_command_in_a_subprocess(tmp_path):
    dsn = "postgresql://u:p@ss@127.0.0.1:1/x"
    proc = subprocess.run([sys.executable, "-c", "from ildstudy.cli import main; main()", "run", "huapaya2019", "--db", dsn,
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "postgresql://u:***@127.0.0.1:1/x" in proc.stderr
    _assert_hidden("p@ss", proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr


def test_wrong_password_on_a_real_server_is_masked(pg_url, small_registry, capsys):
    parts = urlsplit(pg_url)
    wrong = f"{parts.scheme}://{parts.username}:Wr0ng@Pa55@{parts.hostname}:{parts.port or 5432}{parts.path}"
    assert run(["load", str(small_registry), "--db", wrong]) == 2
    captured = capsys.readouterr()
    assert "password authentication failed" in captured.err  # the server was reached and refused
    _assert_hidden("Wr0ng@Pa55", captured.out, captured.err)


def test_key_value_dsn_loads_and_runs_on_a_real_server(pg_schema, small_registry, tmp_path, capsys):
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    kv = make_conninfo(**conninfo_to_dict(pg_schema))  # the same database written as key=value
    assert "://" not in kv and "password=" in kv
    assert run(["load", str(small_registry), "--db", kv]) == 0
    captured = capsys.readouterr()
    assert "Loaded 5 tables" in captured.out
    with psycopg.connect(pg_schema) as con:
        assert con.execute("SELECT count(*) FROM patients").fetchone()[0] == 30
    assert run(["run", "huapaya2019", "--db", kv, "--out", str(tmp_path / "out")]) in (0, 2)
    assert "cannot connect" not in capsys.readouterr().err


# -- load --db targets ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, content", [("notes.txt", b"my notes\n"), ("x.csv", b"a,b\n1,2\n"),
                                           ("old.duckdb", b"not really a database")])
def test_load_refuses_an_existing_non_duckdb_file_and_leaves_it(name, content, small_registry, tmp_path,
                                                                capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path(name).write_bytes(content)
    assert run(["load", str(small_registry), "--db", name]) == 2
    captured = capsys.readouterr()
    assert "not a DuckDB database file" in captured.err
    assert "Loaded" not in captured.out and "internal error" not in captured.err
    assert Path(name).read_bytes() == content


@pytest.mark.parametrize("name", ["x.csv", "notes.txt", "study"])
def test_load_refuses_a_new_file_not_named_duckdb(name, small_registry, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(["load", str(small_registry), "--db", name]) == 2
    assert "not a DuckDB database file" in capsys.readouterr().err
    assert not Path(name).exists()


def test_load_refuses_a_folder(small_registry, capsys):
    assert run(["load", str(small_registry), "--db", str(small_registry)]) == 2
    assert "is a folder, not a DuckDB database file" in capsys.readouterr().err


def test_load_writes_duckdb_and_reports_the_tables_it_finds(small_registry, tmp_path, capsys):
    import duckdb

    from ildstudy.data import load_registry

    target = tmp_path / "study.duckdb"
    assert run(["load", str(small_registry), "--db", str(target)]) == 0
    assert is_duckdb_file(target)
    con = duckdb.connect(str(target), read_only=True)
    try:
        held = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
    finally:
        con.close()
    registry = load_registry(small_registry)
    assert held == {name: len(frame) for name, frame in registry.tables.items()}
    assert f"Loaded 5 tables ({sum(held.values())} rows)" in capsys.readouterr().out
    # an existing DuckDB file under any name, or a duckdb:// URL, is a valid target too
    (tmp_path / "copy.bin").write_bytes(target.read_bytes())
    assert load_into(registry, str(tmp_path / "copy.bin")).rows == held
    assert load_into(registry, f"duckdb://{tmp_path / 'url.anything'}").rows == held


def test_a_missing_table_after_loading_is_an_error(small_registry, tmp_path, monkeypatch):
    from ildstudy.data import load_registry
    from ildstudy.data import database

    registry = load_registry(small_registry)
    real = database._write_duckdb
    monkeypatch.setattr(database, "_write_duckdb",
                        lambda reg, path: {k: v for k, v in real(reg, path).items() if k != "pft"})
    with pytest.raises(OutputError, match=r"does not hold every table: pft \(missing rows"):
        write_registry_to(registry, str(tmp_path / "s.duckdb"))


def test_duckdb_target_rules(tmp_path):
    assert duckdb_target(str(tmp_path / "new.duckdb")) == tmp_path / "new.duckdb"
    assert duckdb_target(str(tmp_path / "new.DB")) == tmp_path / "new.DB"
    with pytest.raises(OutputError, match="not a DuckDB file path or postgresql"):
        duckdb_target("mysql://u:pw99@h/db")
