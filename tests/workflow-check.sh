#!/bin/sh
# The GitHub Actions workflow parses as YAML and says what it must: a windows-latest job with
# msys2/setup-msys2 for the MINGW64 and MINGW32 environments, each with its own check package,
# that runs build-aux/native-check (configure --without-wine, build, make check) for the matrix's
# host: the script that ./hostiocp.sh native runs on Linux too.
#   WORKFLOW  .github/workflows/windows.yml
set -u
: "${WORKFLOW:?WORKFLOW must name .github/workflows/windows.yml}"
if ! python3 -c 'import yaml' 2>/dev/null; then
    case $(uname -s) in
    MINGW*|MSYS*|CYGWIN*) echo "SKIP: python3 with PyYAML is not installed"; exit 77 ;;
    esac
    echo "FAIL: python3 with PyYAML is needed (python3-yaml; build-aux/setup-deps.sh installs it)"
    exit 1
fi
exec python3 - "$WORKFLOW" <<'PY'
import sys, yaml
path = sys.argv[1]
failures = []
try:
    with open(path) as f:
        doc = yaml.safe_load(f)
except (OSError, yaml.YAMLError) as e:
    print("FAIL: %s does not parse: %s" % (path, e))
    sys.exit(1)
def need(cond, what):
    if not cond:
        failures.append(what)
need(isinstance(doc, dict), "the document is a mapping")
doc = doc if isinstance(doc, dict) else {}
need(("on" in doc) or (True in doc), "it says when it runs (on:)")  # YAML 1.1 reads a bare on as true
jobs = doc.get("jobs") or {}
need(isinstance(jobs, dict) and jobs, "it has jobs")
found = False
for name, job in (jobs.items() if isinstance(jobs, dict) else []):
    if not isinstance(job, dict) or job.get("runs-on") != "windows-latest":
        continue
    found = True
    include = ((job.get("strategy") or {}).get("matrix") or {}).get("include") or []
    systems = {entry.get("msystem") for entry in include if isinstance(entry, dict)}
    need({"MINGW64", "MINGW32"} <= systems, "job %s: the matrix has MINGW64 and MINGW32" % name)
    steps = job.get("steps") or []
    need(all(isinstance(s, dict) and ("uses" in s or "run" in s) for s in steps),
         "job %s: every step uses an action or runs a command" % name)
    setup = [s for s in steps if isinstance(s, dict) and str(s.get("uses", "")).startswith("msys2/setup-msys2@")]
    need(len(setup) == 1, "job %s: one msys2/setup-msys2 step" % name)
    if setup:
        w = setup[0].get("with") or {}
        need(w.get("msystem") == "${{ matrix.msystem }}", "job %s: setup-msys2 takes the matrix's msystem" % name)
        need("check:p" in str(w.get("pacboy", "")).split(), "job %s: the environment's own check package (pacboy check:p)" % name)
    runs = "\n".join(str(s.get("run", "")) for s in steps if isinstance(s, dict))
    need("autoreconf" in runs, "job %s: a step runs autoreconf" % name)
    need("sh build-aux/native-check ${{ matrix.host }} " in runs,
         "job %s: a step runs build-aux/native-check for the matrix's host" % name)
    need(all("host" in entry for entry in include if isinstance(entry, dict)),
         "job %s: every matrix entry names its host" % name)
    need("wine " not in runs, "job %s: no step runs Wine" % name)
need(found, "a job runs on windows-latest")
for f in failures:
    print("FAIL: " + f)
if failures:
    sys.exit(1)
print("%s: valid YAML; the windows-latest job runs build-aux/native-check for MINGW64 and MINGW32" % path)
PY
