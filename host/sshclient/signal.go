package sshclient

// signalNames are the SSH signal names (RFC 4254 6.10) with their Linux numbers.
var signalNames = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "FPE": 8, "KILL": 9,
	"USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
}

func signalNumber(name string) int {
	if n, ok := signalNames[name]; ok {
		return n
	}
	return 0
}
