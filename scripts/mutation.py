"""`make mutation`: mutation testing of the modules whose failure would lose or leak data.

Each module in MODULES is mutated by mutmut, one change at a time, and only its own tests
run against each mutant (SQLite, one process: the machine is shared). Every module runs in
a fresh copy of the project under var/mutation/NAME/, bounded by MUTATION_TIMEOUT seconds
(default 1800). The scores and the surviving mutants are written to docs/mutation.md.

A surviving mutant is either killed by a new test, or listed in docs/mutation-equivalents.toml
with the reason it cannot be killed: "equivalent" (no behaviour can tell it from the original;
left out of the score) or "accepted" (a difference not worth a test, such as a log message;
counted as surviving). The run fails when a module scores below TARGET or a survivor is not
explained. Usage:

    make mutation                       # every module
    make mutation MODULES="sc-keys"     # some of them (the others keep their last results)
    .venv/bin/python scripts/mutation.py --report sc-keys   # the report again, no new run
    .venv/bin/python scripts/mutation.py --survivors webhooks   # see below
    .venv/bin/python scripts/mutation.py --survived intake      # see below

--survivors runs, in the module's copy left by its last full run, only the mutants neither
killed nor explained there (those that survived, and those a stopped run never reached),
against the tests as they are now: new and changed test files are copied in; the mutated
file and the list of test paths must be unchanged since that run. Killed mutants stay killed
when tests are only added, so the score is the one a full run would give; the report says
how many were run again and when. On a shared machine a module can take hours: a full run
stopped by MUTATION_TIMEOUT is finished this way. --survived is --survivors without the
mutants the stopped run never reached: the quick check that new tests kill what survived.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "mutation"
DOC = ROOT / "docs" / "mutation.md"
EXPLANATIONS = ROOT / "docs" / "mutation-equivalents.toml"
MUTMUT = ROOT / ".venv" / "bin" / "mutmut"
TARGET = 90.0
TIMEOUT_SECONDS = int(os.environ.get("MUTATION_TIMEOUT", "1800"))


@dataclass(frozen=True)
class Module:
    name: str
    source: str
    tests: str  # paths separated by spaces
    # A mutmut name pattern: only the mutants of the functions it matches (one rule of a
    # larger file); "" mutates the whole file.
    functions: str = ""

    def mutates(self, name: str) -> bool:
        return not self.functions or fnmatch.fnmatch(name, self.functions)

    @property
    def test_paths(self) -> list[str]:
        return self.tests.split()


# One line per module: its name, the file mutated, the tests run against it. Tests that start
# processes of their own (kizuna serve, worker crash tests) would run the unmutated code.
MODULES = [
    Module("sc-keys", "kizuna/survey/keys/services.py", "kizuna/survey/keys/tests"),
    # The lanes and the mail's groups of sent marks are the tests of renew() and of the
    # fenced updates of several rows (update_if_held, update_all_if_held, mark_all_done).
    Module(
        "leases",
        "kizuna/work/leases.py",
        "kizuna/work/tests/test_lease*.py kizuna/work/tests/test_lanes.py "
        "kizuna/work/tests/test_claim_ahead.py kizuna/work/tests/test_lane_batches.py "
        "kizuna/crm/mail/tests/test_sent_marks.py",
    ),
    Module(
        "worker",
        "kizuna/work/workers.py",
        "kizuna/work/tests/test_worker.py kizuna/work/tests/test_retry.py "
        "kizuna/work/tests/test_lanes.py kizuna/work/tests/test_lease_promises.py",
    ),
    # prune_deleted_responses() is tested through the API that lists deleted responses.
    Module(
        "webhooks",
        "kizuna/survey/webhooks/services.py",
        "kizuna/survey/webhooks/tests kizuna/survey/api/tests/test_deleted_responses.py",
    ),
    Module("validation", "kizuna/survey/validation.py", "kizuna/survey/tests/test_validation.py"),
    # The CRM's intake of Survey events and the D6 cut-off rule it applies (E4, D6); the
    # reconciliation pull needs the real Survey service (live_server, in the test process).
    Module(
        "intake",
        "kizuna/crm/integration/responses/services.py",
        "kizuna/crm/integration/responses/tests kizuna/e2e/integration/test_reconciliation.py "
        "kizuna/e2e/integration/reconciliation kizuna/e2e/integration/test_backlog.py",
    ),
    # D6 itself: the comparison of a submission time with the cut-off, one method of the
    # integration's models.
    Module(
        "d6-rule",
        "kizuna/crm/integration/models.py",
        "kizuna/crm/integration/responses/tests",
        functions="*xǁConnectionǁaccepts_submission_at__mutmut_*",
    ),
    Module(
        "crm-access",
        "kizuna/crm/access.py",
        "kizuna/crm/tests/test_persona_matrix.py kizuna/crm/tests/test_home.py "
        "kizuna/crm/tests/test_invitation_view.py kizuna/crm/tests/test_settings_views.py "
        "kizuna/crm/tests/test_access.py kizuna/crm/tests/test_organization_scope.py",
    ),
]

# mutmut's status names; a timeout means the mutant broke the code (it counts as killed).
KILLED = {"killed", "timeout", "caught by type check"}
NOT_RUN = {"skipped", "not checked"}


@dataclass
class Mutant:
    name: str
    status: str
    function: str = ""
    removed: str = ""
    added: str = ""
    diff: str = ""

    @property
    def change(self) -> tuple[str, str, str]:
        return self.function, self.removed, self.added


@dataclass
class Result:
    module: str
    source: str
    tests: list[str]
    total: int = 0
    killed: int = 0
    equivalent: list[dict[str, str]] = field(default_factory=list)
    accepted: list[dict[str, str]] = field(default_factory=list)
    unexplained: list[dict[str, str]] = field(default_factory=list)
    seconds: int = 0
    error: str = ""
    # Set by --survivors: how many mutants were run again, in how long, and when.
    rerun: int = 0
    rerun_seconds: int = 0
    rerun_at: str = ""
    # The commit that last changed the mutated file, at the last run (it may change after).
    commit: str = ""
    functions: str = ""  # Module.functions: only these functions of the file were mutated

    @property
    def mutated(self) -> str:
        shown = f"`{self.source}`"
        if self.functions:
            name = re.sub(r"__mutmut_\*$", "", self.functions).lstrip("*").removeprefix("x")
            shown += f" (only `{name.replace('ǁ', '.').strip('.')}`)"
        return shown

    @property
    def score(self) -> float:
        counted = self.total - len(self.equivalent)
        return 100.0 * self.killed / counted if counted else 0.0

    @property
    def survived(self) -> int:
        return len(self.accepted) + len(self.unexplained)

    @property
    def passes(self) -> bool:
        return not self.error and not self.unexplained and self.score >= TARGET


def _normalized(lines: list[str]) -> str:
    return "\n".join(line[1:].strip() for line in lines)


def _parse_diff(mutant: Mutant, diff: str) -> None:
    """The mutated function and its changed lines, as `mutmut show` prints them."""
    mutant.diff = diff.strip()
    removed = [line for line in diff.splitlines() if line.startswith("-") and line[:3] != "---"]
    added = [line for line in diff.splitlines() if line.startswith("+") and line[:3] != "+++"]
    mutant.removed, mutant.added = _normalized(removed), _normalized(added)
    # mutmut names a mutant module.x_function__mutmut_N, or module.xǁClassǁmethod__mutmut_N.
    tail = re.sub(r"__mutmut_\d+$", "", mutant.name.rsplit(".", 1)[-1])
    if tail.startswith("xǁ"):
        mutant.function = tail[2:].replace("ǁ", ".")
    else:
        mutant.function = tail.removeprefix("x_")


def _explanations() -> dict[tuple[str, str, str, str], dict[str, str]]:
    """(module, function, removed, added) -> {"kind", "reason"} from the explanations file."""
    if not EXPLANATIONS.exists():
        return {}
    data = tomllib.loads(EXPLANATIONS.read_text(encoding="utf-8"))
    explained = {}
    for entry in data.get("mutant", []):
        key = (
            entry["module"],
            entry["function"],
            _strip_lines(entry["removed"]),
            _strip_lines(entry["added"]),
        )
        explained[key] = {"kind": entry["kind"], "reason": entry["reason"]}
    return explained


def _strip_lines(text: str) -> str:
    return "\n".join(line.strip() for line in text.strip().splitlines())


def _expanded(paths: list[str]) -> list[str]:
    """Test paths with their globs expanded (pytest does not expand them)."""
    found: list[str] = []
    for path in paths:
        matches = sorted(str(match.relative_to(ROOT)) for match in ROOT.glob(path))
        found += matches or [path]
    return found


def _prepare(module: Module) -> Path:
    workdir = WORK / module.name
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(ROOT / "kizuna", workdir / "kizuna", ignore=ignore)
    shutil.copy2(ROOT / "conftest.py", workdir / "conftest.py")
    config = {
        "source_paths": ["kizuna"],
        "also_copy": ["conftest.py"],
        "only_mutate": [module.source],
        "pytest_add_cli_args_test_selection": _expanded(module.test_paths),
        "use_git_change_detection": False,
        # Browser tests drive the server through Chromium; PostgreSQL-only ones skip anyway.
        # Every mutant's run makes a new test database: from the models, not the migrations
        # (15 s less each; the migrations only add indexes besides).
        "pytest_add_cli_args": ["-m", "not browser and not postgres", "--nomigrations"],
    }
    section = "\n[tool.mutmut]\n" + "".join(
        f"{key} = {json.dumps(value)}\n" for key, value in config.items()
    )
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (workdir / "pyproject.toml").write_text(pyproject + section, encoding="utf-8")
    return workdir


def _environment(data_dir: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "KIZUNA_TEST_RUN"} and not key.startswith("PYTEST")
    }
    env.update(
        KIZUNA_DATA_DIR=data_dir,
        KIZUNA_SECRET_KEY="mutation-testing-secret-key-" + "0123456789abcdef" * 3,
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _run_mutmut(module: Module, result: Result) -> None:
    """Mutate and test `module` in a fresh copy; a failure or the time limit goes in `result`."""
    workdir = _prepare(module)
    log = WORK / f"{module.name}.log"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kizuna-mutation-") as data_dir:
        try:
            with log.open("w", encoding="utf-8") as output:
                finished = subprocess.run(
                    [str(MUTMUT), "run", "--max-children", "1", *_patterns(module)],
                    cwd=workdir,
                    env=_environment(data_dir),
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    timeout=TIMEOUT_SECONDS,
                    check=False,
                )
            if finished.returncode != 0:
                result.error = f"mutmut run exited with {finished.returncode}: see {log}"
        except subprocess.TimeoutExpired:
            result.error = f"stopped after {TIMEOUT_SECONDS} s (MUTATION_TIMEOUT): see {log}"
    result.seconds = round(time.monotonic() - started)


def _patterns(module: Module) -> list[str]:
    """The mutants `mutmut run` is given: none (every one) or the module's functions."""
    return [module.functions] if module.functions else []


def _sync_tests(module: Module, workdir: Path) -> None:
    """Copy the project's files as they are now into the module's copy, all but the mutated
    file (its mutants are those of the last full run, so it must not have changed)."""
    if (ROOT / module.source).read_bytes() != (workdir / module.source).read_bytes():
        raise SystemExit(f"{module.source} changed since the last full run: run it in full")
    copied = tomllib.loads((workdir / "pyproject.toml").read_text(encoding="utf-8"))
    if copied["tool"]["mutmut"]["pytest_add_cli_args_test_selection"] != _expanded(
        module.test_paths
    ):
        # mutmut would run every mutant again: new tests go in the files or folders listed.
        raise SystemExit(f"The test files of {module.name} changed: run it in full")
    for path in (ROOT / "kizuna").rglob("*"):
        relative = path.relative_to(ROOT)
        if path.is_dir() or "__pycache__" in relative.parts or str(relative) == module.source:
            continue
        for copy in (workdir / relative, workdir / "mutants" / relative):
            if not copy.exists() or copy.read_bytes() != path.read_bytes():
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, copy)
    # A test module deleted or renamed since would still run (twice, under its old name).
    for copies in (workdir, workdir / "mutants"):
        for copy in (copies / "kizuna").rglob("*.py"):
            if not (ROOT / copy.relative_to(copies)).exists():
                copy.unlink()


def _rerun_survivors(module: Module, result: Result, *, reached_only: bool = False) -> None:
    """Run, against the current tests, the mutants of the last full run not killed (survived
    or never reached)."""
    workdir = WORK / module.name
    _sync_tests(module, workdir)
    explained = _explanations()
    with tempfile.TemporaryDirectory(prefix="kizuna-mutation-") as data_dir:
        # Those explained already are left as they are (at worst a new test would kill one
        # that still counts as equivalent or accepted).
        survivors = [
            mutant.name
            for mutant in _mutants(workdir, _environment(data_dir))
            if module.mutates(mutant.name)
            and mutant.status not in KILLED
            and not (reached_only and mutant.status in NOT_RUN)
            and (module.name, *mutant.change) not in explained
        ]
    result.rerun = len(survivors)
    if not survivors:
        return
    log = WORK / f"{module.name}.survivors.log"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kizuna-mutation-") as data_dir:
        try:
            with log.open("w", encoding="utf-8") as output:
                finished = subprocess.run(
                    [str(MUTMUT), "run", "--max-children", "1", *survivors],
                    cwd=workdir,
                    env=_environment(data_dir),
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    timeout=TIMEOUT_SECONDS,
                    check=False,
                )
            if finished.returncode != 0:
                result.error = f"mutmut run exited with {finished.returncode}: see {log}"
        except subprocess.TimeoutExpired:
            result.error = f"stopped after {TIMEOUT_SECONDS} s (MUTATION_TIMEOUT): see {log}"
    result.rerun_seconds = round(time.monotonic() - started)
    result.rerun_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def _source_commit(source: str) -> str:
    """The commit that last changed the mutated file: the score is valid for the file as of
    it (a commit id of HEAD would change with every rebase before landing)."""
    found = subprocess.run(
        ["git", "log", "-1", "--format=%h", "--", source],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return found.stdout.strip()


def run_module(
    module: Module, *, rerun: bool = True, survivors: bool = False, reached_only: bool = False
) -> Result:
    """Mutate and test `module`; with rerun=False only read what its last run left; with
    survivors=True run again only the mutants its last full run did not kill."""
    result = Result(module.name, module.source, module.test_paths, functions=module.functions)
    result.commit = _source_commit(module.source)
    if survivors:
        _rerun_survivors(module, result, reached_only=reached_only)
    elif rerun:
        _run_mutmut(module, result)
    with tempfile.TemporaryDirectory(prefix="kizuna-mutation-") as data_dir:
        mutants = [
            mutant
            for mutant in _mutants(WORK / module.name, _environment(data_dir))
            if module.mutates(mutant.name)
        ]
    explained = _explanations()
    not_run = sum(mutant.status == "not checked" for mutant in mutants)
    if not_run and not result.error:
        result.error = f"{not_run} mutants were not run (the run was stopped)"
    for mutant in mutants:
        if mutant.status in NOT_RUN:
            continue
        result.total += 1
        if mutant.status in KILLED:
            result.killed += 1
            continue
        explanation = explained.get((module.name, *mutant.change))
        entry = {
            "function": mutant.function,
            "removed": mutant.removed,
            "added": mutant.added,
            "status": mutant.status,
        }
        if explanation is None:
            result.unexplained.append({**entry, "diff": mutant.diff})
        elif explanation["kind"] == "equivalent":
            result.equivalent.append({**entry, "reason": explanation["reason"]})
        else:
            result.accepted.append({**entry, "reason": explanation["reason"]})
    return result


# Run by the virtualenv's Python in a module's copy: every mutant's status, and the diff of
# each one not killed, as JSON (one process instead of one `mutmut show` per mutant).
_LIST_MUTANTS = """
import json
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

found = []
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, exit_code in data.exit_code_by_key.items():
        status = status_by_exit_code[exit_code]
        # Not run yet ("not checked") needs its diff too: --survivors leaves out the explained.
        killed = {"killed", "timeout", "caught by type check"}
        diff = "" if status in killed else get_diff_for_mutant(name, path=path)
        found.append({"name": name, "status": status, "diff": diff})
print(json.dumps(found))
"""


def _mutants(workdir: Path, env: dict[str, str]) -> list[Mutant]:
    listing = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-c", _LIST_MUTANTS],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    mutants = []
    for found in json.loads(listing.stdout):
        mutant = Mutant(found["name"], found["status"])
        if found["diff"]:
            _parse_diff(mutant, found["diff"])
        mutants.append(mutant)
    return mutants


# --- the report -------------------------------------------------------------------------------

RESULT_MARK = re.compile(r"^<!-- result (\{.*\}) -->$", re.MULTILINE)


def _previous_results() -> dict[str, Result]:
    if not DOC.exists():
        return {}
    results = {}
    for match in RESULT_MARK.finditer(DOC.read_text(encoding="utf-8")):
        data = json.loads(match.group(1))
        results[data["module"]] = Result(**data)
    return results


def _code(text: str) -> str:
    return "`" + text.replace("\n", " ⏎ ").replace("`", "'") + "`" if text else "(nothing)"


def _section(result: Result) -> list[str]:
    lines = [f"## {result.module}: {result.mutated}", ""]
    lines.append(
        f"Tests: {', '.join(f'`{test}`' for test in result.tests)}. "
        f"{result.total} mutants, {result.killed} killed, {len(result.equivalent)} "
        f"equivalent, {result.survived} surviving: **{result.score:.1f}%** "
        f"({result.seconds} s)."
        + (f" Measured on the file as of commit {result.commit}." if result.commit else "")
    )
    lines.append("")
    if result.rerun_at:
        lines += [
            f"The {result.rerun} {'mutant' if result.rerun == 1 else 'mutants'} the full run had "
            "neither killed nor explained (survived or not reached) "
            f"{'was' if result.rerun == 1 else 'were'} run against the tests of {result.rerun_at} "
            "(`--survivors`, "
            f"{result.rerun_seconds} s).",
            "",
        ]
    if result.error:
        lines += [f"**The run did not finish:** {result.error}", ""]
    for title, entries in (
        ("Equivalent (left out of the score)", result.equivalent),
        ("Surviving, accepted", result.accepted),
    ):
        if entries:
            lines += [f"{title}:", ""]
            for entry in entries:
                lines.append(
                    f"- `{entry['function']}`: {_code(entry['removed'])} → "
                    f"{_code(entry['added'])}: {entry['reason']}"
                )
            lines.append("")
    if result.unexplained:
        lines += ["**Surviving, not explained yet** (kill it with a test, or explain it):", ""]
        for entry in result.unexplained:
            lines += ["```diff", entry["diff"], "```", ""]
    lines += [f"<!-- result {json.dumps(vars(result), ensure_ascii=False)} -->", ""]
    return lines


def write_report(results: dict[str, Result]) -> None:
    lines = [
        "# Mutation testing",
        "",
        "Written by `make mutation` (scripts/mutation.py), which mutates each module below with",
        "mutmut, one change at a time, and runs the module's own tests against every mutant",
        "(SQLite; PostgreSQL-only tests are skipped there, so each behaviour they guard also",
        "has a test that runs on SQLite). The score is killed / (mutants - equivalent); the",
        f"target is {TARGET:.0f}% per module. Each survivor is killed by a new test or explained",
        "in `docs/mutation-equivalents.toml` (equivalent: nothing can tell it from the",
        "original; accepted: a difference not worth a test).",
        "",
        "| module | file | mutants | killed | equivalent | surviving | score |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    ordered = [results[m.name] for m in MODULES if m.name in results]
    for result in ordered:
        # A stopped run's figures cover only the mutants it reached: not a score yet.
        score = f"{result.score:.1f}%" + (" (run not finished)" if result.error else "")
        lines.append(
            f"| {result.module} | {result.mutated} | {result.total} | {result.killed} | "
            f"{len(result.equivalent)} | {result.survived} | {score} |"
        )
    for module in MODULES:
        if module.name not in results:
            lines.append(f"| {module.name} | `{module.source}` | not run yet | | | | |")
    lines += [
        "",
        "Adding a module is one line in `MODULES` of `scripts/mutation.py`; a module can be one",
        "rule of a larger file (`functions=`, a mutmut name pattern, as d6-rule is).",
        "",
    ]
    for result in ordered:
        lines += _section(result)
    DOC.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


def main(names: list[str]) -> int:
    rerun = "--report" not in names
    reached_only = "--survived" in names
    survivors = "--survivors" in names or reached_only
    names = [name for name in names if name not in {"--report", "--survivors", "--survived"}]
    known = {module.name: module for module in MODULES}
    unknown = sorted(set(names) - set(known))
    if unknown:
        print(f"Unknown modules: {', '.join(unknown)}; known: {', '.join(known)}")
        return 2
    chosen = [known[name] for name in names] if names else MODULES
    results = _previous_results()
    results = {name: result for name, result in results.items() if name in known}
    WORK.mkdir(parents=True, exist_ok=True)
    for module in chosen:
        print(f"{module.name}: mutating {module.source} ...", flush=True)
        result = run_module(module, rerun=rerun, survivors=survivors, reached_only=reached_only)
        previous = results.get(module.name, result)
        if not rerun or survivors:
            result.seconds = previous.seconds
        if not rerun:
            result.rerun, result.rerun_seconds = previous.rerun, previous.rerun_seconds
            result.rerun_at, result.commit = previous.rerun_at, previous.commit
        # Another `make mutation` may have written its modules meanwhile: keep its results.
        results = {name: found for name, found in _previous_results().items() if name in known}
        results[module.name] = result
        write_report(results)
        verdict = "ok" if result.passes else "BELOW TARGET OR UNEXPLAINED SURVIVORS"
        print(
            f"{module.name}: {result.total} mutants, {result.killed} killed, "
            f"{len(result.equivalent)} equivalent, {result.survived} surviving "
            f"({len(result.unexplained)} unexplained): {result.score:.1f}% in "
            f"{result.seconds} s: {verdict}{'; ' + result.error if result.error else ''}",
            flush=True,
        )
    failing = [name for name in results if not results[name].passes]
    print(f"Report: {DOC.relative_to(ROOT)}")
    if failing:
        print(f"Below {TARGET:.0f}% or with unexplained survivors: {', '.join(failing)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
