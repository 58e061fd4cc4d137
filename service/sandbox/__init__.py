"""The agent sandbox: an agent is untrusted code, so it runs where it cannot hurt anything else.

What an agent sees (built by bubblewrap, `bwrap.py`): the system read-only; its workspace
read-write at the path the server gave it; a private home and /tmp of its own (directories of
the job, bound in); no data directory, no other job, no server config (hidden behind empty
tmpfs mounts or /dev/null); its own PID, IPC, UTS, cgroup and mount namespaces, so no process of
the host is visible or reachable by a signal; no further user namespaces (`--disable-userns`).
Creating a Unix-domain socket is refused by a seccomp filter (`seccomp.py`): a read-only mount
still lets `connect()` reach a host socket (Docker/podman's API, D-Bus, the server's own), and
io_uring, which could create one behind the filter's back, is refused too.

Who it runs as: when the server runs as root, an unprivileged account (`agent_user`, created at
startup when missing, `host.py`); the wrapper drops to it before bwrap starts, and bwrap runs
unprivileged in a user namespace mapping only that uid. When the server is not root, agents
keep its uid, but only ever inside the namespaces.

Its network (`network.py`): its own network namespace, with user-mode NAT (slirp4netns,
`--disable-host-loopback`) when the agent template allows the network, and nftables rules set
before the agent starts, from outside, in a namespace where the agent holds no capability:
loopback, private, link-local (cloud metadata), shared and multicast ranges, the host's own
addresses and every IPv6 destination are refused, except the admin's `agent_network_allow`
entries. Without the network (`network = false`), only the namespace's own loopback exists.

The wrapper (`service.agents.wrapper`) sets all of this up around the agent and stays outside:
it is the only writer of the run directory, it keeps the agent's PID namespace alive only as long
as the agent's first process (when that one exits, the kernel kills everything left in the
namespace), and nothing the agent does can escape the process group the server kills.
"""
