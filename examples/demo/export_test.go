package main

// Run exposes run to the external test package.
var Run = run
