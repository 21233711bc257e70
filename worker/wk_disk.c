/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_disk: the local disks of a block migration (see wk_disk.h).  The
 * images are made with qemu-img, spawned without a shell (posix_spawn:
 * fork/exec semantics without copying the worker's address space), not
 * with libvirt's storage API: that needs a storage pool per instance
 * directory, which nova never defines, and qemu-img is what nova's own
 * pre_live_migration runs.
 */
#include "wk_disk.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* qemu-img create takes milliseconds; anything near this is stuck. */
#define QEMU_IMG_TIMEOUT_MS 60000
/* Larger than any disk nova makes (64 TiB), small enough for any format. */
#define MAX_VIRT_SIZE (64LL << 40)

static const char *const copy_names[] = {
    [WK_DISK_COPY_NONE] = "none",
    [WK_DISK_COPY_FULL] = "full",
    [WK_DISK_COPY_INCREMENTAL] = "incremental",
};

const char *
wk_disk_copy_name(enum wk_disk_copy c)
{
	return copy_names[c];
}

int
wk_disk_copy_parse(const char *s, enum wk_disk_copy *ret)
{
	for (size_t i = 0; s != NULL && i < sizeof(copy_names) / sizeof(copy_names[0]); i++)
		if (strcmp(s, copy_names[i]) == 0) {
			*ret = (enum wk_disk_copy)i;
			return 0;
		}
	return -EINVAL;
}

static bool
format_ok(const char *f)
{
	return strcmp(f, "qcow2") == 0 || strcmp(f, "raw") == 0;
}

/* Length of instances_path without trailing slashes. */
static size_t
root_len(const char *instances_path)
{
	size_t n = strlen(instances_path);

	while (n > 1 && instances_path[n - 1] == '/')
		n--;
	return n;
}

int
wk_disk_path_check(const char *instances_path, const char *path, struct wk_err *reterr)
{
	size_t rl = root_len(instances_path), n = strlen(path);
	const char *p;

	if (n == 0 || n >= WK_DISK_PATH_MAX || path[0] != '/')
		return wk_err_set(reterr, -EINVAL, "path is not an absolute path (or too long)");
	for (p = path; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return wk_err_set(reterr, -EINVAL, "path contains a control character");
	for (p = path; *p != '\0';) {
		const char *c = p + 1, *e = strchr(c, '/');
		size_t cl = e ? (size_t)(e - c) : strlen(c);

		if (cl == 0 || (cl == 1 && c[0] == '.') || (cl == 2 && c[0] == '.' && c[1] == '.'))
			return wk_err_set(
			    reterr, -EINVAL, "path has an empty, \".\" or \"..\" component");
		p = c + cl;
	}
	if (n <= rl + 1 || strncmp(path, instances_path, rl) != 0 || (rl > 1 && path[rl] != '/'))
		return wk_err_set(reterr, -EINVAL,
		    "path is not below libvirt.instances_path '%.*s'", (int)rl, instances_path);
	return 0;
}

/* ---- source: the domain XML ---- */

static xmlNodePtr
child(xmlNodePtr n, const char *name)
{
	for (xmlNodePtr c = n ? n->children : NULL; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT_NODE && xmlStrcmp(c->name, (const xmlChar *)name) == 0)
			return c;
	return NULL;
}

/* Attribute attr of n into buf ("" when absent); false when it does not fit. */
static bool
attr(xmlNodePtr n, const char *name, char *buf, size_t size)
{
	xmlChar *v = n ? xmlGetProp(n, (const xmlChar *)name) : NULL;
	bool fits = true;

	buf[0] = '\0';
	if (v != NULL) {
		fits = strlen((const char *)v) < size;
		if (fits)
			memcpy(buf, v, strlen((const char *)v) + 1);
		xmlFree(v);
	}
	return fits;
}

/* One <disk>: 1 and d filled when it is a local disk, 0 when it is not,
 * -errno for a local disk that cannot be migrated. */
static int
disk_of(xmlNodePtr disk, const char *instances_path, struct wk_disk *d, struct wk_err *reterr)
{
	char type[16], device[16];
	xmlNodePtr bs;
	struct wk_err perr;

	memset(d, 0, sizeof(*d));
	d->virt_disk_size = d->disk_size = -1;
	attr(disk, "type", type, sizeof(type));
	attr(disk, "device", device, sizeof(device));
	if (strcmp(type, "file") != 0 || (device[0] != '\0' && strcmp(device, "disk") != 0) ||
	    child(disk, "readonly") != NULL || child(disk, "shareable") != NULL ||
	    child(disk, "transient") != NULL)
		return 0; /* network, block, volume, CD-ROM, read-only, shared: not ours */
	if (!attr(child(disk, "source"), "file", d->path, sizeof(d->path)) || d->path[0] == '\0')
		return 0;
	if (wk_disk_path_check(instances_path, d->path, &perr) < 0)
		return 0; /* a volume mounted elsewhere (NFS, ...): shared */
	attr(child(disk, "target"), "dev", d->target, sizeof(d->target));
	attr(child(disk, "driver"), "type", d->type, sizeof(d->type));
	if (d->target[0] == '\0')
		return wk_err_set(reterr, -EINVAL, "local disk '%s' has no target device", d->path);
	if (!format_ok(d->type))
		return wk_err_set(reterr, -EOPNOTSUPP,
		    "local disk '%s' (%s) is in format '%s': block migration copies qcow2 and raw "
		    "images only",
		    d->path, d->target, d->type);
	bs = child(disk, "backingStore");
	if (bs != NULL) {
		/* Only a file-backed backing store can be looked for on the
		 * destination; <backingStore/> says there is none. */
		char bt[16];

		attr(bs, "type", bt, sizeof(bt));
		if (strcmp(bt, "file") != 0 ||
		    !attr(child(bs, "source"), "file", d->backing_file, sizeof(d->backing_file)))
			d->backing_file[0] = '\0';
		else
			attr(child(bs, "format"), "type", d->backing_format,
			    sizeof(d->backing_format));
	}
	return 1;
}

int
wk_disk_from_domain_xml(const char *xml, const char *instances_path, struct wk_disk_list *ret_list,
    struct wk_err *reterr)
{
	xmlDocPtr doc;
	xmlNodePtr devices;
	int r = 0;

	ret_list->n = 0;
	doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
	    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc == NULL)
		return wk_err_set(reterr, -EINVAL, "the domain XML does not parse");
	devices = child(xmlDocGetRootElement(doc), "devices");
	for (xmlNodePtr n = devices ? devices->children : NULL; n != NULL && r >= 0; n = n->next) {
		struct wk_disk d;

		if (n->type != XML_ELEMENT_NODE || xmlStrcmp(n->name, (const xmlChar *)"disk") != 0)
			continue;
		r = disk_of(n, instances_path, &d, reterr);
		if (r <= 0)
			continue;
		if (ret_list->n >= WK_DISK_MAX)
			r = wk_err_set(reterr, -E2BIG, "more than %d local disks", WK_DISK_MAX);
		else
			ret_list->disk[ret_list->n++] = d;
	}
	xmlFreeDoc(doc);
	return r < 0 ? r : 0;
}

json_t *
wk_disk_list_to_json(const struct wk_disk_list *l)
{
	json_t *a = json_array();

	for (int i = 0; a != NULL && i < l->n; i++) {
		const struct wk_disk *d = &l->disk[i];
		long long over =
		    d->virt_disk_size >= 0 && d->disk_size >= 0 && d->virt_disk_size > d->disk_size
		        ? d->virt_disk_size - d->disk_size
		        : 0;
		json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:I,s:I,s:s,s:s}", "type", d->type, "path",
		    d->path, "virt_disk_size", (json_int_t)d->virt_disk_size, "backing_file",
		    d->backing_file, "disk_size", (json_int_t)d->disk_size,
		    "over_committed_disk_size", (json_int_t)over, "target_dev", d->target,
		    "backing_format", d->backing_format);

		if (o == NULL || json_array_append_new(a, o) < 0) {
			json_decref(a);
			a = NULL;
		}
	}
	return a;
}

/* ---- destination: the argument ---- */

static int
str_key(
    json_t *o, int i, const char *key, bool required, char *buf, size_t size, struct wk_err *reterr)
{
	json_t *v = json_object_get(o, key);

	buf[0] = '\0';
	if (v == NULL || json_is_null(v)) {
		if (required)
			return wk_err_set(reterr, -EINVAL, "disk %d: key '%s' is missing", i, key);
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) >= size ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return wk_err_set(
		    reterr, -EINVAL, "disk %d: key '%s' is not a string (or too long)", i, key);
	memcpy(buf, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int
entry_of(json_t *o, int i, const char *instances_path, struct wk_disk *d, struct wk_err *reterr)
{
	json_t *vs = json_object_get(o, "virt_disk_size"), *ds = json_object_get(o, "disk_size");
	struct wk_err perr;
	int r;

	memset(d, 0, sizeof(*d));
	if (!json_is_object(o))
		return wk_err_set(reterr, -EINVAL, "disk %d is not an object", i);
	if ((r = str_key(o, i, "path", true, d->path, sizeof(d->path), reterr)) < 0 ||
	    (r = str_key(o, i, "type", true, d->type, sizeof(d->type), reterr)) < 0 ||
	    (r = str_key(o, i, "backing_file", false, d->backing_file, sizeof(d->backing_file),
	         reterr)) < 0 ||
	    (r = str_key(o, i, "backing_format", false, d->backing_format,
	         sizeof(d->backing_format), reterr)) < 0 ||
	    (r = str_key(o, i, "target_dev", false, d->target, sizeof(d->target), reterr)) < 0)
		return r;
	if (wk_disk_path_check(instances_path, d->path, &perr) < 0)
		return wk_err_set(reterr, -EINVAL, "disk %d: key 'path': %s", i, perr.msg);
	if (!format_ok(d->type))
		return wk_err_set(reterr, -EINVAL,
		    "disk %d: key 'type' is '%s'; ferry creates qcow2 and raw images only", i,
		    d->type);
	if (!json_is_integer(vs) || json_integer_value(vs) <= 0 ||
	    json_integer_value(vs) > MAX_VIRT_SIZE)
		return wk_err_set(reterr, -EINVAL,
		    "disk %d: key 'virt_disk_size' is not a size in bytes between 1 and 64 TiB", i);
	d->virt_disk_size = json_integer_value(vs);
	d->disk_size = json_is_integer(ds) ? json_integer_value(ds) : -1;
	if (d->backing_file[0] != '\0') {
		if (strchr(d->backing_file, '/') != NULL &&
		    wk_disk_path_check(instances_path, d->backing_file, &perr) < 0)
			return wk_err_set(
			    reterr, -EINVAL, "disk %d: key 'backing_file': %s", i, perr.msg);
		if (strcmp(d->backing_file, ".") == 0 || strcmp(d->backing_file, "..") == 0)
			return wk_err_set(reterr, -EINVAL, "disk %d: key 'backing_file' is '%s'", i,
			    d->backing_file);
		if (d->backing_format[0] != '\0' && !format_ok(d->backing_format))
			return wk_err_set(reterr, -EINVAL,
			    "disk %d: key 'backing_format' is '%s', not qcow2 or raw", i,
			    d->backing_format);
	}
	if (strcmp(d->type, "raw") == 0 && d->backing_file[0] != '\0')
		return wk_err_set(
		    reterr, -EINVAL, "disk %d: a raw image cannot have a backing file", i);
	return 0;
}

int
wk_disk_list_from_arg(
    json_t *disk, const char *instances_path, struct wk_disk_list *ret_list, struct wk_err *reterr)
{
	json_t *list = NULL;
	json_error_t jerr;
	size_t i;
	int r = 0;

	ret_list->n = 0;
	if (disk == NULL || json_is_null(disk))
		return 0;
	if (json_is_string(disk)) {
		list = json_loads(json_string_value(disk), JSON_REJECT_DUPLICATES, &jerr);
		if (list == NULL)
			return wk_err_set(
			    reterr, -EINVAL, "argument 'disk' is not JSON: %s", jerr.text);
	} else
		list = json_incref(disk);
	if (!json_is_array(list))
		r = wk_err_set(reterr, -EINVAL, "argument 'disk' is not a list of disks");
	else if (json_array_size(list) > WK_DISK_MAX)
		r = wk_err_set(reterr, -E2BIG, "argument 'disk' names %zu disks, at most %d",
		    json_array_size(list), WK_DISK_MAX);
	for (i = 0; r == 0 && i < json_array_size(list); i++) {
		struct wk_disk *d = &ret_list->disk[i];

		r = entry_of(json_array_get(list, i), (int)i, instances_path, d, reterr);
		for (size_t j = 0; r == 0 && j < i; j++)
			if (strcmp(ret_list->disk[j].path, d->path) == 0)
				r = wk_err_set(reterr, -EINVAL,
				    "disk %zu: path '%s' is named twice", i, d->path);
		if (r == 0)
			ret_list->n = (int)i + 1;
	}
	json_decref(list);
	if (r < 0) {
		ret_list->n = 0;
		return r == -E2BIG ? r : -EINVAL;
	}
	return 0;
}

/* ---- destination: the images ---- */

/* realpath(dir) is root or below it. */
static bool
below(const char *root_real, const char *dir_real)
{
	size_t rl = strlen(root_real);

	return strncmp(dir_real, root_real, rl) == 0 &&
	       (dir_real[rl] == '\0' || dir_real[rl] == '/' || strcmp(root_real, "/") == 0);
}

/* dir_real's parent is root_real itself (an instance's own directory). */
static bool
right_below(const char *root_real, const char *dir_real)
{
	const char *slash = strrchr(dir_real, '/');
	size_t rl = strcmp(root_real, "/") == 0 ? 0 : strlen(root_real);

	return slash != NULL && slash[1] != '\0' && (size_t)(slash - dir_real) == rl &&
	       strncmp(dir_real, root_real, rl) == 0;
}

static int
record(json_t *created, const char *path, const char *kind)
{
	json_t *o = json_pack("{s:s,s:s}", "path", path, "kind", kind);

	return o != NULL && json_array_append_new(created, o) == 0 ? 0 : -ENOMEM;
}

/* Runs argv (argv[0] an absolute program), no shell; its first output
 * goes into reterr on failure. */
static int
run_tool(char *const argv[], struct wk_err *reterr)
{
	static char env_path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin", env_lc[] = "LC_ALL=C";
	char *const envp[] = {env_path, env_lc, NULL};
	posix_spawn_file_actions_t fa;
	char out[400];
	size_t got = 0;
	int pfd[2], st = 0, r;
	pid_t pid;
	uint64_t deadline = wk_now_ms() + QEMU_IMG_TIMEOUT_MS;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return wk_err_set(reterr, -errno, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	r = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (r != 0) {
		close(pfd[0]);
		return wk_err_set(reterr, -r, "cannot run %s: %s", argv[0], strerror(r));
	}
	for (;;) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		uint64_t now = wk_now_ms();
		char buf[256];
		ssize_t n;

		if (now >= deadline) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&p, 1, (int)(deadline - now)) <= 0)
			continue;
		n = read(pfd[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		if (got < sizeof(out) - 1) {
			size_t take =
			    (size_t)n < sizeof(out) - 1 - got ? (size_t)n : sizeof(out) - 1 - got;

			memcpy(out + got, buf, take);
			got += take;
		}
	}
	close(pfd[0]);
	out[got] = '\0';
	while (got > 0 && (out[got - 1] == '\n' || out[got - 1] == ' '))
		out[--got] = '\0';
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFSIGNALED(st))
		return wk_err_set(reterr, -ETIMEDOUT, "%s was killed (signal %d) after %d s: %s",
		    argv[0], WTERMSIG(st), QEMU_IMG_TIMEOUT_MS / 1000, out);
	return wk_err_set(reterr, -EIO, "%s failed (exit %d): %s", argv[0],
	    WIFEXITED(st) ? WEXITSTATUS(st) : -1, out[0] ? out : "no message");
}

/* Where disk d's backing file is here: *ret true and the resolved path
 * when it is a regular file below the instances directory. */
static void
find_backing(const char *instances_path, const char *root_real, const struct wk_disk *d,
    char resolved[PATH_MAX], bool *ret)
{
	char want[WK_DISK_PATH_MAX + 64];
	struct stat st;

	*ret = false;
	if (d->backing_file[0] == '\0')
		return;
	if (strchr(d->backing_file, '/') == NULL) /* nova: a name in the image cache */
		snprintf(want, sizeof(want), "%.*s/_base/%s", (int)root_len(instances_path),
		    instances_path, d->backing_file);
	else
		snprintf(want, sizeof(want), "%s", d->backing_file);
	if (realpath(want, resolved) == NULL || !below(root_real, resolved) ||
	    stat(resolved, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	*ret = true;
}

/* Makes the image of d at path (its directory already checked); the
 * backing file when backing is not NULL. */
static int
create_image(const char *qemu_img, const struct wk_disk *d, const char *path, const char *backing,
    struct wk_err *reterr)
{
	/* Writable copies: exec's argv is char *const[]. */
	struct {
		char prog[PATH_MAX], create[8], quiet[4], f[4], type[16], bf[4], bfmt[16], b[4],
		    backing[PATH_MAX], path[PATH_MAX + WK_DISK_PATH_MAX], size[32];
	} a;
	char *argv[16];
	int n = 0;

	snprintf(a.prog, sizeof(a.prog), "%s", qemu_img);
	snprintf(a.create, sizeof(a.create), "create");
	snprintf(a.quiet, sizeof(a.quiet), "-q");
	snprintf(a.f, sizeof(a.f), "-f");
	snprintf(a.type, sizeof(a.type), "%s", d->type);
	snprintf(a.bf, sizeof(a.bf), "-F");
	snprintf(a.bfmt, sizeof(a.bfmt), "%s", d->backing_format[0] ? d->backing_format : "raw");
	snprintf(a.b, sizeof(a.b), "-b");
	snprintf(a.backing, sizeof(a.backing), "%s", backing ? backing : "");
	snprintf(a.path, sizeof(a.path), "%s", path);
	snprintf(a.size, sizeof(a.size), "%lld", d->virt_disk_size);
	argv[n++] = a.prog;
	argv[n++] = a.create;
	argv[n++] = a.quiet;
	argv[n++] = a.f;
	argv[n++] = a.type;
	if (backing != NULL) {
		argv[n++] = a.bf;
		argv[n++] = a.bfmt;
		argv[n++] = a.b;
		argv[n++] = a.backing;
	}
	argv[n++] = a.path;
	argv[n++] = a.size;
	argv[n] = NULL;
	return run_tool(argv, reterr);
}

/* Checks d's directory, creating the instance directory when missing;
 * *ret_path is the image path with that directory resolved. */
static int
prepare_dir(const char *instances_path, const char *root_real, const struct wk_disk *d,
    json_t *created, char ret_path[PATH_MAX + WK_DISK_PATH_MAX], struct wk_err *reterr)
{
	char dir[WK_DISK_PATH_MAX], up[WK_DISK_PATH_MAX], real[PATH_MAX];
	const char *base = strrchr(d->path, '/') + 1;
	struct stat st;
	int r;

	snprintf(dir, sizeof(dir), "%.*s", (int)(base - 1 - d->path), d->path);
	if (lstat(dir, &st) < 0 && errno == ENOENT) {
		/* Only the instance's own directory, right below the root. */
		snprintf(up, sizeof(up), "%.*s", (int)(strrchr(dir, '/') - dir), dir);
		if (up[0] == '\0' || realpath(up, real) == NULL || strcmp(real, root_real) != 0)
			return wk_err_set(reterr, -ENOENT,
			    "directory '%s' of disk '%s' does not exist here (only the instance "
			    "directory right below libvirt.instances_path is created)",
			    dir, d->path);
		r = record(created, dir, "dir");
		if (r < 0)
			return wk_err_set(reterr, r, "out of memory");
		if (mkdir(dir, 0755) < 0) {
			r = -errno;
			json_array_remove(created, json_array_size(created) - 1);
			return wk_err_set(
			    reterr, r, "cannot create directory '%s': %s", dir, strerror(-r));
		}
	}
	if (realpath(dir, real) == NULL)
		return wk_err_set(
		    reterr, -errno, "directory of disk '%s': %s", d->path, strerror(errno));
	if (!below(root_real, real))
		return wk_err_set(reterr, -EPERM,
		    "disk '%s' resolves to '%s', outside libvirt.instances_path '%s' (a symlink?)",
		    d->path, real, root_real);
	snprintf(ret_path, PATH_MAX + WK_DISK_PATH_MAX, "%s/%s", real, base);
	if (lstat(ret_path, &st) == 0 || errno != ENOENT)
		return wk_err_set(reterr, -EEXIST,
		    "disk '%s' already exists here; ferry creates new images only and never "
		    "overwrites one (shared instance storage needs no block migration)",
		    d->path);
	return 0;
}

int
wk_disk_create_all(const char *instances_path, const char *qemu_img, const struct wk_disk_list *l,
    json_t *created, enum wk_disk_copy *ret_copy, struct wk_err *reterr)
{
	char(*backing)[PATH_MAX];
	char root_real[PATH_MAX], path[PATH_MAX + WK_DISK_PATH_MAX];
	size_t mark = json_array_size(created);
	bool incremental = l->n > 0, have;
	struct wk_err ignored;
	int i, r = 0;

	*ret_copy = WK_DISK_COPY_NONE;
	if (l->n == 0)
		return 0;
	if (realpath(instances_path, root_real) == NULL)
		return wk_err_set(reterr, -ENOENT,
		    "libvirt.instances_path '%s' does not exist here: %s", instances_path,
		    strerror(errno));
	backing = calloc(WK_DISK_MAX, sizeof(*backing));
	if (backing == NULL)
		return wk_err_set(reterr, -ENOMEM, "out of memory");
	for (i = 0; i < l->n; i++) {
		find_backing(instances_path, root_real, &l->disk[i], backing[i], &have);
		incremental = incremental && have;
	}
	for (i = 0; i < l->n && r == 0; i++) {
		r = prepare_dir(instances_path, root_real, &l->disk[i], created, path, reterr);
		if (r == 0)
			r = record(created, path, "file");
		if (r == 0)
			r = create_image(
			    qemu_img, &l->disk[i], path, incremental ? backing[i] : NULL, reterr);
	}
	free(backing);
	if (r < 0) {
		/* Only what this call made; the entries before mark stay. */
		json_t *mine = json_array();

		while (mine != NULL && json_array_size(created) > mark) {
			json_array_insert(mine, 0, json_array_get(created, mark));
			json_array_remove(created, mark);
		}
		if (mine != NULL) {
			wk_disk_remove_created(mine, &ignored);
			json_decref(mine);
		}
		return r;
	}
	*ret_copy = incremental ? WK_DISK_COPY_INCREMENTAL : WK_DISK_COPY_FULL;
	return 0;
}

int
wk_disk_remove_created(json_t *created, struct wk_err *reterr)
{
	int first = 0;

	for (size_t i = json_array_size(created); i-- > 0;) {
		json_t *e = json_array_get(created, i);
		const char *path = json_string_value(json_object_get(e, "path"));
		const char *kind = json_string_value(json_object_get(e, "kind"));
		int rc;

		if (path == NULL || kind == NULL) {
			json_array_remove(created, i);
			continue;
		}
		rc = strcmp(kind, "dir") == 0 ? rmdir(path) : unlink(path);
		if (rc == 0 || errno == ENOENT ||
		    (strcmp(kind, "dir") == 0 && errno == ENOTEMPTY)) {
			json_array_remove(created, i);
			continue;
		}
		if (first == 0)
			first = wk_err_set(
			    reterr, -errno, "cannot remove '%s': %s", path, strerror(errno));
	}
	return first;
}

int
wk_disk_remove_source(
    const char *instances_path, const char *path, unsigned *ret_done, struct wk_err *reterr)
{
	char root_real[PATH_MAX], dir[WK_DISK_PATH_MAX], real[PATH_MAX],
	    file[PATH_MAX + WK_DISK_PATH_MAX];
	const char *base;
	struct wk_err perr;
	struct stat st;
	unsigned done = 0;

	if (wk_disk_path_check(instances_path, path, &perr) < 0)
		return wk_err_set(reterr, -EPERM, "'%s': %s", path, perr.msg);
	if (realpath(instances_path, root_real) == NULL)
		return wk_err_set(reterr, -errno, "libvirt.instances_path '%s': %s", instances_path,
		    strerror(errno));
	base = strrchr(path, '/') + 1;
	snprintf(dir, sizeof(dir), "%.*s", (int)(base - 1 - path), path);
	if (realpath(dir, real) == NULL) {
		if (errno == ENOENT) { /* removed with its directory before */
			*ret_done = 0;
			return 0;
		}
		return wk_err_set(
		    reterr, -errno, "directory of disk '%s': %s", path, strerror(errno));
	}
	if (!below(root_real, real))
		return wk_err_set(reterr, -EPERM,
		    "disk '%s' resolves to '%s', outside libvirt.instances_path '%s' (a symlink?)",
		    path, real, root_real);
	snprintf(file, sizeof(file), "%s/%s", real, base);
	if (lstat(file, &st) < 0) {
		if (errno != ENOENT)
			return wk_err_set(reterr, -errno, "disk '%s': %s", path, strerror(errno));
	} else if (!S_ISREG(st.st_mode))
		return wk_err_set(reterr, -EPERM,
		    "disk '%s' is not a regular file (a symlink, directory or device): left alone",
		    path);
	else if (unlink(file) < 0)
		return wk_err_set(
		    reterr, -errno, "cannot remove disk '%s': %s", path, strerror(errno));
	else
		done |= WK_DISK_REMOVED_FILE;
	/* The instance's own directory, right below the root, once empty. */
	if (right_below(root_real, real)) {
		if (rmdir(real) == 0)
			done |= WK_DISK_REMOVED_DIR;
		else if (errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT)
			return wk_err_set(reterr, -errno, "cannot remove directory '%s': %s", real,
			    strerror(errno));
	}
	*ret_done = done;
	return 0;
}
