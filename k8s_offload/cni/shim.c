/*
 * offload-cni on a node: the CNI plugin the container runtime executes, as a static program.
 *
 * The plugin itself is Python and lives in the DaemonSet's image, which the node does not have.
 * This program is what `offload-cni install --shim` puts into the node's CNI plugin directory
 * (docs/cni.md, "On a node"): it depends on nothing but the kernel, and hands each invocation to
 * the CNI server in the DaemonSet pod (`offload-cni serve`, k8s_offload/cni/server.py) over a
 * Unix socket, as Antrea's, Kube-OVN's and Multus' thick plugin shims do:
 *
 *   - it sends its whole environment (the CNI_* parameters among it), its stdin (the network
 *     configuration) and, when CNI_NETNS opens, that descriptor (SCM_RIGHTS), so the server
 *     reaches the pod's namespace whatever the path means in its own mount namespace;
 *   - it runs the delegated IPAM plugin on the node when the server asks (CNI spec §4: found in
 *     CNI_PATH, run with the given environment and stdin, our stderr, a time limit), so host-local
 *     and the rest keep their state where the runtime expects it;
 *   - it relays the server's log lines to stderr and, at the end, its stdout and exit code.
 *
 * If the server cannot be reached, it answers as a plugin must (§5 "Error"): an error document on
 * stdout and exit code 1, code 11 ("try again later": the DaemonSet pod is starting) or, for
 * STATUS, 50 ("not available").
 *
 * Frames, both ways: one tag byte, the payload length as 4 bytes big-endian, the payload. The
 * tags and their meaning are listed in server.py. Socket: $OFFLOAD_CNI_SOCKET, else
 * /run/k8s-offload/cni.sock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/k8s-offload/cni.sock"
#define PROTOCOL "offload-cni-shim/1"
#define MAX_STDIN (1 << 20)
#define MAX_FRAME (16 << 20)
#define MAX_OUTPUT (1 << 20)
/* Delegate results beyond the plain exit status 0..255. */
#define STATUS_NOT_FOUND 0x100
#define STATUS_TIMEOUT 0x101
#define STATUS_EXEC_FAILED 0x102
#define STATUS_SIGNALED 0x200 /* | signal number */

extern char **environ;

struct buf {
	char *data;
	size_t len, cap;
};

static void die_oom(void)
{
	static const char msg[] = "offload-cni: out of memory\n";
	(void)!write(2, msg, sizeof msg - 1);
	_exit(1);
}

/* Room for `len` more bytes (and a NUL after them). */
static void buf_reserve(struct buf *b, size_t len)
{
	if (b->len + len + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + len + 1)
		cap *= 2;
	char *grown = realloc(b->data, cap);
	if (!grown)
		die_oom();
	b->data = grown;
	b->cap = cap;
}

static void buf_add(struct buf *b, const void *data, size_t len)
{
	buf_reserve(b, len);
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

/* The first "cniVersion" string of the configuration, for our own error documents: the runtime
 * parses an error in the version it asked for. A crude scan, good enough for that one purpose;
 * "1.1.0" when there is none. */
static void cni_version(const struct buf *in, char *out, size_t size)
{
	snprintf(out, size, "1.1.0");
	const char *p = in->data ? strstr(in->data, "\"cniVersion\"") : NULL;
	if (!p)
		return;
	p += strlen("\"cniVersion\"");
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p++ != ':')
		return;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p++ != '"')
		return;
	size_t n = 0;
	while (p[n] && p[n] != '"' && n < 15 && ((p[n] >= '0' && p[n] <= '9') || p[n] == '.'))
		n++;
	if (n && p[n] == '"')
		snprintf(out, size, "%.*s", (int)n, p);
}

/* Print a CNI error document and exit 1. Only our own texts go into it: no escaping needed
 * beyond what json_text does for strerror() and the socket path. */
static void json_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

static const struct buf *g_stdin;

static void fail(int code, const char *msg, const char *details)
{
	char version[16];
	cni_version(g_stdin, version, sizeof version);
	fprintf(stderr, "offload-cni: %s: %s\n", msg, details);
	printf("{\n  \"cniVersion\": \"%s\",\n  \"code\": %d,\n  \"msg\": \"", version, code);
	json_text(stdout, msg);
	printf("\",\n  \"details\": \"");
	json_text(stdout, details);
	printf("\"\n}\n");
	fflush(stdout);
	exit(1);
}

static int g_unreachable_code = 11; /* 50 under STATUS */

static void lost(const char *what, int err)
{
	char details[256];
	snprintf(details, sizeof details, "%s: %s", what, err ? strerror(err) : "connection closed");
	fail(g_unreachable_code, "lost the offload-cni server", details);
}

static void write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			lost("write", n < 0 ? errno : 0);
		p += n;
		len -= (size_t)n;
	}
}

static void read_all(int fd, void *data, size_t len)
{
	char *p = data;
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			lost("read", n < 0 ? errno : 0);
		p += n;
		len -= (size_t)n;
	}
}

static void send_frame(int sock, char tag, const void *data, size_t len)
{
	unsigned char head[5];
	uint32_t n = htonl((uint32_t)len);
	head[0] = (unsigned char)tag;
	memcpy(head + 1, &n, 4);
	write_all(sock, head, sizeof head);
	write_all(sock, data, len);
}

/* The first frame, with the pod namespace's descriptor attached when there is one. */
static void send_hello(int sock, int netns_fd)
{
	unsigned char frame[5 + sizeof PROTOCOL - 1];
	uint32_t n = htonl(sizeof PROTOCOL - 1);
	frame[0] = 'H';
	memcpy(frame + 1, &n, 4);
	memcpy(frame + 5, PROTOCOL, sizeof PROTOCOL - 1);
	struct iovec iov = {.iov_base = frame, .iov_len = sizeof frame};
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int))];
	} control;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (netns_fd >= 0) {
		memset(&control, 0, sizeof control);
		msg.msg_control = control.space;
		msg.msg_controllen = sizeof control.space;
		struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &netns_fd, sizeof(int));
	}
	ssize_t sent;
	do
		sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		lost("sendmsg", errno);
	if ((size_t)sent < sizeof frame)
		write_all(sock, frame + sent, sizeof frame - (size_t)sent);
}

static char recv_frame(int sock, struct buf *payload)
{
	unsigned char head[5];
	uint32_t n;
	read_all(sock, head, sizeof head);
	memcpy(&n, head + 1, 4);
	n = ntohl(n);
	if (n > MAX_FRAME)
		fail(g_unreachable_code, "offload-cni server sent an oversized frame", "protocol error");
	payload->len = 0;
	buf_reserve(payload, n);
	read_all(sock, payload->data, n);
	payload->len = n;
	payload->data[n] = '\0';
	return (char)head[0];
}

static void expect_frame(int sock, char tag, struct buf *payload)
{
	if (recv_frame(sock, payload) != tag)
		fail(g_unreachable_code, "offload-cni server broke the protocol", "unexpected frame");
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Find `name` in the CNI_PATH of `env` (a block of NUL-terminated KEY=VALUE strings). */
static int find_plugin(const char *name, char *const *env, char *path, size_t size)
{
	if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return -1;
	const char *dirs = "";
	for (char *const *e = env; *e; e++)
		if (!strncmp(*e, "CNI_PATH=", 9))
			dirs = *e + 9;
	while (*dirs) {
		size_t len = strcspn(dirs, ":");
		if (len && (size_t)snprintf(path, size, "%.*s/%s", (int)len, dirs, name) < size) {
			struct stat st;
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0)
				return 0;
		}
		dirs += len;
		if (*dirs == ':')
			dirs++;
	}
	return -1;
}

/* Run a delegated plugin as the runtime would (§4): its stdout captured, stderr ours. Returns
 * the status word of an 'R' frame; `out` gets its stdout (or, on failure to start it, why). */
static uint32_t run_plugin(const char *name, char *const *env, const struct buf *in, unsigned timeout,
			   struct buf *out)
{
	char path[4096];
	if (find_plugin(name, env, path, sizeof path) < 0)
		return STATUS_NOT_FOUND;
	int to_child[2], from_child[2], errors[2];
	if (pipe2(to_child, O_CLOEXEC) || pipe2(from_child, O_CLOEXEC) || pipe2(errors, O_CLOEXEC)) {
		buf_add(out, strerror(errno), strlen(strerror(errno)));
		return STATUS_EXEC_FAILED;
	}
	pid_t pid = fork();
	if (pid < 0) {
		buf_add(out, strerror(errno), strlen(strerror(errno)));
		return STATUS_EXEC_FAILED;
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		dup2(to_child[0], 0);
		dup2(from_child[1], 1);
		char *argv[] = {path, NULL};
		execve(path, argv, env);
		int err = errno;
		(void)!write(errors[1], &err, sizeof err);
		_exit(127);
	}
	close(to_child[0]);
	close(from_child[1]);
	close(errors[1]);
	int err = 0;
	if (read(errors[0], &err, sizeof err) == (ssize_t)sizeof err) { /* EOF: execve succeeded */
		close(to_child[1]);
		close(from_child[0]);
		close(errors[0]);
		waitpid(pid, NULL, 0);
		buf_add(out, strerror(err), strlen(strerror(err)));
		return STATUS_EXEC_FAILED;
	}
	close(errors[0]);
	double deadline = now() + timeout;
	size_t written = 0;
	int in_fd = to_child[1], out_fd = from_child[0];
	if (in->len == 0) {
		close(in_fd);
		in_fd = -1;
	}
	uint32_t status = 0;
	while (out_fd >= 0) {
		double left = deadline - now();
		if (left <= 0) {
			kill(pid, SIGKILL);
			status = STATUS_TIMEOUT;
			break;
		}
		struct pollfd fds[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = in_fd, .events = POLLOUT}};
		int ready = poll(fds, in_fd >= 0 ? 2 : 1, (int)(left * 1000) + 1);
		if (ready < 0 && errno != EINTR)
			break;
		if (ready <= 0)
			continue;
		if (in_fd >= 0 && fds[1].revents) {
			ssize_t n = write(in_fd, in->data + written, in->len - written);
			if (n > 0)
				written += (size_t)n;
			if (n < 0 || written == in->len) { /* done, or the plugin stopped reading */
				close(in_fd);
				in_fd = -1;
			}
		}
		if (fds[0].revents) {
			char chunk[65536];
			ssize_t n = read(out_fd, chunk, sizeof chunk);
			if (n > 0 && out->len < MAX_OUTPUT)
				buf_add(out, chunk, (size_t)n);
			else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
				close(out_fd);
				out_fd = -1;
			}
		}
	}
	if (in_fd >= 0)
		close(in_fd);
	if (out_fd >= 0)
		close(out_fd);
	int wstatus = 0;
	if (status == STATUS_TIMEOUT) {
		while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
			;
		return status;
	}
	/* Its stdout is closed, but it may still run: wait for it within the same limit. */
	for (;;) {
		pid_t done = waitpid(pid, &wstatus, WNOHANG);
		if (done == pid || (done < 0 && errno != EINTR))
			break;
		if (now() >= deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
				;
			return STATUS_TIMEOUT;
		}
		struct timespec pause = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
		nanosleep(&pause, NULL);
	}
	if (WIFSIGNALED(wstatus))
		return STATUS_SIGNALED | (uint32_t)WTERMSIG(wstatus);
	return (uint32_t)WEXITSTATUS(wstatus);
}

/* A block of NUL-terminated strings -> a NULL-terminated array pointing into it. */
static char **split_env(struct buf *block)
{
	size_t count = 0;
	for (size_t i = 0; i < block->len; i++)
		count += block->data[i] == '\0';
	char **env = calloc(count + 1, sizeof *env);
	if (!env)
		die_oom();
	size_t k = 0;
	for (size_t i = 0; i < block->len && k < count; k++) {
		env[k] = block->data + i;
		i += strlen(block->data + i) + 1;
	}
	env[k] = NULL;
	return env;
}

static void delegate(int sock, const struct buf *request)
{
	struct buf env_block = {0}, in = {0}, out = {0};
	uint32_t timeout;
	if (request->len < 5)
		fail(g_unreachable_code, "offload-cni server broke the protocol", "short X frame");
	memcpy(&timeout, request->data, 4);
	timeout = ntohl(timeout);
	char name[256];
	snprintf(name, sizeof name, "%.*s", (int)(request->len - 4), request->data + 4);
	expect_frame(sock, 'E', &env_block);
	expect_frame(sock, 'I', &in);
	char **env = split_env(&env_block);
	buf_add(&out, "\0\0\0\0", 4); /* the status word, filled in below */
	struct buf result = {0};
	uint32_t status = htonl(run_plugin(name, env, &in, timeout, &result));
	memcpy(out.data, &status, 4);
	buf_add(&out, result.data, result.len);
	send_frame(sock, 'R', out.data, out.len);
	free(env);
	free(env_block.data);
	free(in.data);
	free(out.data);
	free(result.data);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	struct buf in = {0};
	buf_reserve(&in, 0);
	in.data[0] = '\0';
	g_stdin = &in;
	const char *command = getenv("CNI_COMMAND");
	if (command && !strcmp(command, "STATUS"))
		g_unreachable_code = 50;
	for (;;) { /* stdin, up to one byte more than the server accepts (so it can say "too large") */
		char chunk[65536];
		ssize_t n = read(0, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t room = MAX_STDIN + 1 - in.len;
		buf_add(&in, chunk, (size_t)n < room ? (size_t)n : room);
		if (in.len > MAX_STDIN)
			break;
	}

	const char *path = getenv("OFFLOAD_CNI_SOCKET");
	if (!path || !*path)
		path = DEFAULT_SOCKET;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof addr.sun_path)
		fail(g_unreachable_code, "offload-cni server socket path is too long", path);
	strcpy(addr.sun_path, path);
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) {
		char details[sizeof addr.sun_path + 128];
		snprintf(details, sizeof details, "%s: %s", path, strerror(errno));
		fail(g_unreachable_code, "offload-cni server is not running on this node", details);
	}

	const char *netns = getenv("CNI_NETNS");
	int netns_fd = netns && *netns ? open(netns, O_RDONLY | O_CLOEXEC) : -1;
	send_hello(sock, netns_fd);
	if (netns_fd >= 0)
		close(netns_fd);
	struct buf env_block = {0};
	for (char **e = environ; *e; e++)
		buf_add(&env_block, *e, strlen(*e) + 1);
	send_frame(sock, 'E', env_block.data, env_block.len);
	send_frame(sock, 'I', in.data, in.len);

	struct buf frame = {0}, result = {0};
	for (;;) {
		char tag = recv_frame(sock, &frame);
		if (tag == 'L') {
			(void)!write(2, frame.data, frame.len);
		} else if (tag == 'X') {
			delegate(sock, &frame);
		} else if (tag == 'O') {
			result.len = 0;
			buf_add(&result, frame.data, frame.len);
		} else if (tag == 'C' && frame.len == 4) {
			uint32_t code;
			memcpy(&code, frame.data, 4);
			for (size_t done = 0; done < result.len;) {
				ssize_t n = write(1, result.data + done, result.len - done);
				if (n < 0 && errno == EINTR)
					continue;
				if (n <= 0)
					return 1; /* nobody reads our answer: nothing better to do */
				done += (size_t)n;
			}
			return (int)ntohl(code);
		} else {
			fail(g_unreachable_code, "offload-cni server broke the protocol", "unknown frame");
		}
	}
}
