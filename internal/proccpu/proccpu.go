// Package proccpu reads the CPU time the process has used, for the
// benchmarks that report it beside wall time (cpu-ns/op and the like):
// unlike wall time, it hardly depends on what else the machine runs.
package proccpu
