package lifecycle

import (
	"fmt"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/instance"
)

// State is an instance's state as status and list show it.
type State string

// States of an instance.
const (
	StateStopped  State = "stopped"  // no host process
	StateStarting State = "starting" // host process up, agent not yet answering
	StateRunning  State = "running"  // the agent answered
	// StateUnresponsive is a running VM whose agent has been silent past
	// sshproto.SilenceLimit: hung, overwhelmed or paused.
	StateUnresponsive State = "unresponsive"
)

// Status is one instance as status and list show it (JSON included).
type Status struct {
	Name        string `json:"name"`
	State       State  `json:"state"`
	Driver      string `json:"driver"`
	Accelerator string `json:"accelerator,omitempty"`
	// EmulatedBecause says why the guest's CPU is emulated (TCG) where a
	// hardware accelerator was wanted.
	EmulatedBecause string  `json:"emulatedBecause,omitempty"`
	Arch            string  `json:"arch"`
	CPUs            int     `json:"cpus"`
	MemoryMiB       int     `json:"memoryMiB"`
	DiskGiB         int     `json:"diskGiB"`
	UptimeSeconds   float64 `json:"uptimeSeconds,omitempty"`
	Dir             string  `json:"dir"`
	// DockerHost is the DOCKER_HOST that reaches the guest's Docker API,
	// set while the host process serves it (running or unresponsive).
	DockerHost string `json:"dockerHost,omitempty"`
	// Mounts are the host folders shared into the VM: those it mounted
	// while it runs, those it will share when stopped.
	Mounts []api.Share `json:"mounts,omitempty"`
	// HypervisorState is, while the agent is silent, the state the
	// hypervisor holds the guest in when it is not running it ("paused",
	// "io-error", ...).
	HypervisorState string `json:"hypervisorState,omitempty"`
	// IdlePausedSince is set while the host process holds a running VM
	// paused because nothing used it (instance.Config.IdlePause); the next
	// command or Docker client resumes it.
	IdlePausedSince *time.Time `json:"idlePausedSince,omitempty"`
	// Hint says what to do about the state, when something can be done.
	Hint string `json:"hint,omitempty"`
}

// StatusOf reads inst's state without waiting: the host process's lock says
// whether it runs, its boot marker whether the guest answered.
func StatusOf(inst *instance.Instance) Status {
	s := Status{
		Name: inst.Config.Name, State: StateStopped, Driver: inst.Config.Driver, Arch: inst.Config.Arch,
		CPUs: inst.Config.CPUs, MemoryMiB: inst.Config.MemoryMiB, DiskGiB: inst.Config.DiskGiB, Dir: inst.Dir,
	}
	if !instance.Held(inst.Path(instance.RunLockFile)) {
		s.Mounts = inst.Config.Shares()
		return s
	}
	s.State = StateStarting
	if bi, err := inst.ReadBootInfo(); err == nil {
		s.State = StateRunning
		s.Accelerator = bi.Accelerator
		s.EmulatedBecause = bi.EmulatedBecause
		s.DockerHost = inst.DockerHost()
		s.UptimeSeconds = time.Since(bi.Ready).Round(time.Second).Seconds()
		s.Mounts = bi.Shares
		s.IdlePausedSince = bi.IdlePausedSince
		if bi.AgentSilentSince != nil {
			s.State = StateUnresponsive
			s.HypervisorState = bi.HypervisorState
			if bi.HypervisorState != "" {
				s.Hint = fmt.Sprintf("the hypervisor is not running the guest (%s) and its agent has not answered since %s: vmbox stop stops it",
					hypervisorStateWords(bi.HypervisorState), bi.AgentSilentSince.Format(time.TimeOnly))
			} else {
				s.Hint = fmt.Sprintf("the guest agent has not answered since %s (%s ago): see vmbox logs; vmbox stop stops it",
					bi.AgentSilentSince.Format(time.TimeOnly), time.Since(*bi.AgentSilentSince).Round(time.Second))
			}
		}
	}
	return s
}

// hypervisorStateWords says what a QEMU run state means for the user.
func hypervisorStateWords(state string) string {
	switch state {
	case "paused":
		return "paused: through QMP (cont resumes it) or a debugger"
	case "io-error":
		return "io-error: a write to the data disk failed; is the host's disk full?"
	case "internal-error":
		return "internal-error: the accelerator failed; see qemu.log in the instance's directory"
	case "guest-panicked":
		return "guest-panicked: the guest kernel panicked; see vmbox logs"
	}
	return state
}
