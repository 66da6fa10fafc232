"""Every `COCODE_*` environment variable's name, in one place (values are part of
the interfaces: ADR-003's agent protocol, the supervisor-service contract, test hooks).

Bottom layer: imports nothing.
"""

# ADR-003, the agent protocol: set for every agent process, never overridable.
REPO_PATH = "COCODE_REPO_PATH"
ISSUE_NUMBER = "COCODE_ISSUE_NUMBER"
ISSUE_URL = "COCODE_ISSUE_URL"
ISSUE_BODY_FILE = "COCODE_ISSUE_BODY_FILE"
READY_MARKER = "COCODE_READY_MARKER"
JOB_ID = "COCODE_JOB_ID"
AGENT_NAME = "COCODE_AGENT_NAME"

# Set for a check (services/checks.py): also JOB_ID, REPO_PATH, and AGENT_NAME as the
# check's log identity `<agent>/check:<name>`, which is how the monitor finds what escapes it.
JUNIT_XML = "COCODE_JUNIT_XML"  # where the check may write JUnit XML for exact counts
CHECK_NAME = "COCODE_CHECK_NAME"
CHECK_AGENT = "COCODE_AGENT"  # the run's agent
# Set for a `notify:` command, besides its {placeholders}: COCODE_NOTIFY_<FIELD>.
NOTIFY_PREFIX = "COCODE_NOTIFY_"

# Between the supervisor and the services it starts.
SUPERVISOR_PID = "COCODE_SUPERVISOR_PID"  # a service stops when this process is gone
STARTED_FD = "COCODE_STARTED_FD"  # `up --detach` to its supervisor: write "ready" here once all are
PERFORMANCE_PROFILE = "COCODE_PERFORMANCE_PROFILE"  # `cocode up --profile`
METRICS_PORT = "COCODE_METRICS_PORT"  # `cocode up --metrics-port`: the monitor serves HTTP

# Set by the user or a test.
CGROUP_PARENT = "COCODE_CGROUP_PARENT"  # a delegated cgroup v2 directory to use
STORE_MAX_PAGES = "COCODE_STORE_MAX_PAGES"  # caps the log's pages: lets tests fill the disk
TOP_FPS = "COCODE_TOP_FPS"  # `cocode top`: at most this many output frames a second (measuring others)
PORTABLE_SAMPLER = "COCODE_PORTABLE_SAMPLER"  # 1: sample processes with psutil, not /proc

# Other programs' variables cocode sets.
TEXTUAL_FPS = "TEXTUAL_FPS"  # Textual's screen updates a second at most (read when textual is first imported)
