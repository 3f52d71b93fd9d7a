#!/bin/sh
# Runs the control protocol fuzzer for SECONDS (default 60) at the lowest priority, seeded with
# requests of every shape and answers agentctl reads, and a dictionary of the protocol's words.
# Further arguments go to libFuzzer.
exec "$(dirname "$0")/../run-seeded.sh" ControlRequest control-request control.dict 8192 "$@"
