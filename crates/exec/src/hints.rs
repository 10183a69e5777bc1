//! What the kernel's refusals mean, and how to lift them: on a host a sysctl, in a container the
//! runtime's defaults (its seccomp profile, its masked `/proc` paths, its capabilities). Each
//! text is appended to the error of the step that hit the refusal, so the message names the
//! setting that blocks which namespace (README, "Running in CI and Kubernetes").

/// Why creating a user namespace fails when it does: on a host, a sysctl; in a container, its
/// seccomp profile (docker's default and Kubernetes' RuntimeDefault allow the namespace flags of
/// `unshare` and `clone` only with CAP_SYS_ADMIN).
pub(crate) const USERNS_HINT: &str = "; unprivileged user namespaces may be disabled: check \
     /proc/sys/user/max_user_namespaces and kernel.apparmor_restrict_unprivileged_userns; in a \
     container, its seccomp profile refuses them: run it with --security-opt seccomp=unconfined \
     (Kubernetes: securityContext.seccompProfile.type: Unconfined), or a profile that allows \
     unshare and clone with CLONE_NEWUSER";

/// Why `newuidmap` is refused in a container: set-uid root, it writes the map with an euid that
/// does not own the new namespace, and the kernel then asks for CAP_SYS_ADMIN, which no
/// unprivileged container has; with a file capability it keeps the caller's uid, the owner.
pub(crate) const MAP_HELPER_IN_CONTAINER_HINT: &str = "; in a container, a set-uid newuidmap/newgidmap \
     needs CAP_SYS_ADMIN: give them file capabilities instead (setcap cap_setuid=ep \
     /usr/bin/newuidmap; setcap cap_setgid=ep /usr/bin/newgidmap, as the stagecraft image does), \
     keep SETUID and SETGID in the container's capabilities, and do not set no-new-privileges \
     (Kubernetes: allowPrivilegeEscalation: false), which switches file capabilities off";

/// Why a fresh `/proc` is refused in a container: the kernel allows one in a user namespace only
/// when no part of the outer `/proc` is hidden, and container runtimes hide some by default.
pub(crate) const PROC_IN_CONTAINER_HINT: &str = "; in a container this means its /proc has masked paths \
     (docker's and Kubernetes' default), and the kernel then refuses a new /proc in a user \
     namespace: run it with --security-opt systempaths=unconfined (Kubernetes: \
     securityContext.procMount: Unmasked, with hostUsers: false)";
