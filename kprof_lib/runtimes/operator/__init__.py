"""The kprof operator runtime: `app.Operator` wires the watch caches, leader election, the scheduler
(`scheduling`), the check runner (`checks`), the HTTP endpoints and metrics (`http`) and the log
format (`logs`). `kprof run` (kprof_lib.runtimes.commands.run) starts it; docs/OPERATOR.md says how
it behaves."""
