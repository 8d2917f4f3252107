package natsbroker

// EncodeMessage is the broker's envelope, for the benchmarks.
var EncodeMessage = encodeMessage
