/* SPDX-License-Identifier: Apache-2.0 */
/* wk_disk: which disks are local, the `disk` argument checked, images made
 * only below the instances directory and removed again. */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tu_tmpdir.h"
#include "wk_disk.h"

#define IP "/var/lib/nova/instances"

static const char *domain =
    "<domain type='kvm'><name>i</name><devices>"
    /* the root disk, qcow2 over a _base image: local */
    "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
    "<source file='" IP "/u1/disk' index='2'/>"
    "<backingStore type='file' index='3'><format type='raw'/>"
    "<source file='" IP "/_base/abc'/><backingStore/></backingStore>"
    "<target dev='vda' bus='virtio'/></disk>"
    /* a raw ephemeral disk: local, no backing */
    "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
    "<source file='" IP "/u1/disk.eph0'/><backingStore/>"
    "<target dev='vdb' bus='virtio'/></disk>"
    /* config drive (CD-ROM, read-only): not copied */
    "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
    "<source file='" IP "/u1/disk.config'/><target dev='hda' bus='ide'/><readonly/></disk>"
    /* a cinder volume over NFS, outside the instances path: shared */
    "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
    "<source file='/var/lib/nova/mnt/abcd/volume-1'/><target dev='vdc' bus='virtio'/></disk>"
    /* an RBD volume: network */
    "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
    "<source protocol='rbd' name='vols/v2'/><target dev='vdd' bus='virtio'/></disk>"
    /* an iSCSI LUN: block */
    "<disk type='block' device='disk'><driver name='qemu' type='raw'/>"
    "<source dev='/dev/sdx'/><target dev='vde' bus='virtio'/></disk>"
    /* shareable file */
    "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
    "<source file='" IP "/u1/shared'/><target dev='vdf' bus='virtio'/><shareable/></disk>"
    "</devices></domain>";

Test(wk_disk, only_local_file_disks_below_the_instances_path_are_listed)
{
	struct wk_disk_list *l = calloc(1, sizeof(*l));
	struct wk_err err = {{0}};

	cr_assert_eq(wk_disk_from_domain_xml(domain, IP, l, &err), 0, "%s", err.msg);
	cr_assert_eq(l->n, 2);
	cr_assert_str_eq(l->disk[0].target, "vda");
	cr_assert_str_eq(l->disk[0].path, IP "/u1/disk");
	cr_assert_str_eq(l->disk[0].type, "qcow2");
	cr_assert_str_eq(l->disk[0].backing_file, IP "/_base/abc");
	cr_assert_str_eq(l->disk[0].backing_format, "raw");
	cr_assert_str_eq(l->disk[1].target, "vdb");
	cr_assert_str_eq(l->disk[1].type, "raw");
	cr_assert_str_eq(l->disk[1].backing_file, "");
	/* the same domain under another instances path has no local disk */
	cr_assert_eq(wk_disk_from_domain_xml(domain, "/srv/instances", l, &err), 0);
	cr_assert_eq(l->n, 0);
	free(l);
}

Test(wk_disk, a_local_disk_in_another_format_or_bad_xml_is_refused)
{
	struct wk_disk_list *l = calloc(1, sizeof(*l));
	struct wk_err err = {{0}};

	cr_assert_eq(wk_disk_from_domain_xml("<domain><devices><disk type='file' device='disk'>"
	                                     "<driver type='vmdk'/><source file='" IP "/u/d'/>"
	                                     "<target dev='vda'/></disk></devices></domain>",
	                 IP, l, &err),
	    -EOPNOTSUPP);
	cr_assert(strstr(err.msg, "vmdk") != NULL, "%s", err.msg);
	cr_assert_eq(wk_disk_from_domain_xml("<domain><devices", IP, l, &err), -EINVAL);
	free(l);
}

Test(wk_disk, the_json_form_round_trips_and_is_novas)
{
	struct wk_disk_list *l = calloc(1, sizeof(*l)), *back = calloc(1, sizeof(*back));
	struct wk_err err = {{0}};
	json_t *j, *e;
	char *text;

	cr_assert_eq(wk_disk_from_domain_xml(domain, IP, l, &err), 0);
	l->disk[0].virt_disk_size = 10LL << 30;
	l->disk[0].disk_size = 1LL << 30;
	l->disk[1].virt_disk_size = 1LL << 30;
	l->disk[1].disk_size = 1LL << 30;
	j = wk_disk_list_to_json(l);
	e = json_array_get(j, 0);
	cr_assert_str_eq(json_string_value(json_object_get(e, "type")), "qcow2");
	cr_assert_eq(json_integer_value(json_object_get(e, "over_committed_disk_size")), 9LL << 30);
	cr_assert_eq(
	    json_integer_value(json_object_get(json_array_get(j, 1), "over_committed_disk_size")),
	    0);
	/* as nova sends it: a JSON text */
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	j = json_string(text);
	free(text);
	cr_assert_eq(wk_disk_list_from_arg(j, IP, back, &err), 0, "%s", err.msg);
	json_decref(j);
	cr_assert_eq(back->n, 2);
	cr_assert_str_eq(back->disk[0].path, l->disk[0].path);
	cr_assert_str_eq(back->disk[0].target, "vda");
	cr_assert_eq(back->disk[0].virt_disk_size, 10LL << 30);
	cr_assert_str_eq(back->disk[0].backing_file, IP "/_base/abc");
	cr_assert_eq(wk_disk_list_from_arg(json_null(), IP, back, &err), 0);
	cr_assert_eq(back->n, 0);
	free(l);
	free(back);
}

Test(wk_disk, paths_outside_the_instances_path_are_refused)
{
	static const char *bad[] = {"relative/disk", IP, IP "/", IP "/../etc/passwd",
	    IP "/u/../../x", IP "/./u/disk", IP "//u/disk", IP "/u/", "/etc/passwd", IP "x/u/disk",
	    "/var/lib/nova/instancesx/disk", IP "/u/dis\nk", ""};
	static const char *good[] = {IP "/u/disk", IP "/disk", IP "/_base/abc", IP "/u/..disk"};
	struct wk_err err = {{0}};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(
		    wk_disk_path_check(IP, bad[i], &err), -EINVAL, "accepted '%s'", bad[i]);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_eq(wk_disk_path_check(IP, good[i], &err), 0, "%s: %s", good[i], err.msg);
	cr_assert_eq(wk_disk_path_check(IP "/", IP "/u/disk", &err), 0, "%s", err.msg);
}

static int
arg(const char *text, struct wk_err *err)
{
	struct wk_disk_list *l = calloc(1, sizeof(*l));
	json_t *j = json_string(text);
	int r = wk_disk_list_from_arg(j, IP, l, err);

	json_decref(j);
	free(l);
	return r;
}

Test(wk_disk, bad_disk_arguments_name_the_entry_and_key)
{
	struct wk_err err = {{0}};

	cr_assert_eq(arg("not json", &err), -EINVAL);
	cr_assert(strstr(err.msg, "not JSON") != NULL, "%s", err.msg);
	cr_assert_eq(arg("{}", &err), -EINVAL);
	cr_assert_eq(arg("[{\"type\":\"qcow2\",\"virt_disk_size\":1}]", &err), -EINVAL);
	cr_assert(strstr(err.msg, "disk 0: key 'path'") != NULL, "%s", err.msg);
	cr_assert_eq(
	    arg("[{\"path\":\"/etc/x\",\"type\":\"qcow2\",\"virt_disk_size\":1}]", &err), -EINVAL);
	cr_assert(strstr(err.msg, "instances_path") != NULL, "%s", err.msg);
	cr_assert_eq(
	    arg("[{\"path\":\"" IP "/u/d\",\"type\":\"vmdk\",\"virt_disk_size\":1}]", &err),
	    -EINVAL);
	cr_assert(strstr(err.msg, "'type'") != NULL, "%s", err.msg);
	cr_assert_eq(
	    arg("[{\"path\":\"" IP "/u/d\",\"type\":\"raw\",\"virt_disk_size\":-5}]", &err),
	    -EINVAL);
	cr_assert(strstr(err.msg, "virt_disk_size") != NULL, "%s", err.msg);
	cr_assert_eq(arg("[{\"path\":\"" IP "/u/d\",\"type\":\"qcow2\",\"virt_disk_size\":1,"
	                 "\"backing_file\":\"/etc/shadow\"}]",
	                 &err),
	    -EINVAL);
	cr_assert(strstr(err.msg, "backing_file") != NULL, "%s", err.msg);
	cr_assert_eq(arg("[{\"path\":\"" IP "/u/d\",\"type\":\"qcow2\",\"virt_disk_size\":1},"
	                 "{\"path\":\"" IP "/u/d\",\"type\":\"qcow2\",\"virt_disk_size\":1}]",
	                 &err),
	    -EINVAL);
	cr_assert(strstr(err.msg, "twice") != NULL, "%s", err.msg);
	cr_assert_eq(arg("[{\"path\":\"" IP "/u/d\",\"type\":\"raw\",\"virt_disk_size\":1,"
	                 "\"backing_file\":\"abc\"}]",
	                 &err),
	    -EINVAL);
}

static bool
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* The real qemu-img, in a private instances directory. */
Test(wk_disk, images_are_created_below_the_root_and_removed_again)
{
	char root[512], p[PATH_MAX + 64], outside[512];
	struct wk_disk_list *l = calloc(1, sizeof(*l));
	struct wk_err err = {{0}};
	enum wk_disk_copy copy;
	json_t *created = json_array();
	FILE *fp;

	if (access(WK_DISK_QEMU_IMG, X_OK) != 0)
		cr_skip_test("no " WK_DISK_QEMU_IMG);
	tu_tmpdir_make(root, sizeof(root), "disk");
	tu_tmpdir_make(outside, sizeof(outside), "disk-outside");
	l->n = 2;
	snprintf(l->disk[0].path, sizeof(l->disk[0].path), "%s/u1/disk", root);
	snprintf(l->disk[0].type, sizeof(l->disk[0].type), "qcow2");
	l->disk[0].virt_disk_size = 1 << 20;
	snprintf(l->disk[0].backing_file, sizeof(l->disk[0].backing_file), "abc");
	snprintf(l->disk[1].path, sizeof(l->disk[1].path), "%s/u1/disk.eph0", root);
	snprintf(l->disk[1].type, sizeof(l->disk[1].type), "raw");
	l->disk[1].virt_disk_size = 2 << 20;

	/* no backing file here: a full copy, both made, the directory too */
	cr_assert_eq(
	    wk_disk_create_all(root, WK_DISK_QEMU_IMG, l, created, &copy, &err), 0, "%s", err.msg);
	cr_assert_eq(copy, WK_DISK_COPY_FULL);
	cr_assert_eq(json_array_size(created), 3);
	cr_assert(exists(l->disk[0].path) && exists(l->disk[1].path));
	/* never over an existing image */
	cr_assert_eq(wk_disk_create_all(root, WK_DISK_QEMU_IMG, l, created, &copy, &err), -EEXIST);
	cr_assert_eq(json_array_size(created), 3);
	cr_assert_eq(wk_disk_remove_created(created, &err), 0, "%s", err.msg);
	cr_assert_eq(json_array_size(created), 0);
	snprintf(p, sizeof(p), "%s/u1", root);
	cr_assert(!exists(p));

	/* a symlinked instance directory that leads out is refused */
	cr_assert_eq(symlink(outside, p), 0);
	cr_assert_eq(wk_disk_create_all(root, WK_DISK_QEMU_IMG, l, created, &copy, &err), -EPERM);
	cr_assert(strstr(err.msg, "outside") != NULL, "%s", err.msg);
	cr_assert_eq(json_array_size(created), 0);
	snprintf(p, sizeof(p), "%s/disk", outside);
	cr_assert(!exists(p));
	snprintf(p, sizeof(p), "%s/u1", root);
	unlink(p);

	/* every backing file present: incremental, and a failure half-way
	 * (the second disk's directory is not the instance directory) leaves
	 * nothing behind */
	snprintf(p, sizeof(p), "%s/_base", root);
	cr_assert_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/_base/abc", root);
	fp = fopen(p, "w");
	cr_assert(fp != NULL);
	fclose(fp);
	l->n = 1;
	cr_assert_eq(
	    wk_disk_create_all(root, WK_DISK_QEMU_IMG, l, created, &copy, &err), 0, "%s", err.msg);
	cr_assert_eq(copy, WK_DISK_COPY_INCREMENTAL);
	cr_assert_eq(wk_disk_remove_created(created, &err), 0);
	l->n = 2;
	snprintf(l->disk[1].path, sizeof(l->disk[1].path), "%s/a/b/disk", root);
	cr_assert_eq(wk_disk_create_all(root, WK_DISK_QEMU_IMG, l, created, &copy, &err), -ENOENT);
	cr_assert_eq(json_array_size(created), 0);
	cr_assert(!exists(l->disk[0].path));
	snprintf(p, sizeof(p), "%s/_base/abc", root);
	cr_assert(exists(p), "a file it did not create was removed");

	json_decref(created);
	free(l);
	tu_tmpdir_remove(root);
	tu_tmpdir_remove(outside);
}

static void
touch(const char *path)
{
	FILE *fp = fopen(path, "w");

	cr_assert(fp != NULL, "%s", path);
	fclose(fp);
}

/* The source's cleanup after a completed block migration: exactly the
 * image, then its instance directory once empty; nothing outside the
 * root, nothing that is not a regular file, a repeat harmless. */
Test(wk_disk, source_removes_only_its_images_below_the_root)
{
	char root[512], outside[512], p[PATH_MAX + 64], q[PATH_MAX + 64];
	struct wk_err err = {{0}};
	unsigned done = 99;

	tu_tmpdir_make(root, sizeof(root), "disk-src");
	tu_tmpdir_make(outside, sizeof(outside), "disk-src-outside");

	/* two images in one instance directory: the directory goes with the last */
	snprintf(p, sizeof(p), "%s/u1", root);
	cr_assert_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/u1/disk", root);
	touch(p);
	snprintf(q, sizeof(q), "%s/u1/disk.eph0", root);
	touch(q);
	cr_assert_eq(wk_disk_remove_source(root, p, &done, &err), 0, "%s", err.msg);
	cr_assert_eq(done, WK_DISK_REMOVED_FILE);
	cr_assert(!exists(p) && exists(q));
	cr_assert_eq(wk_disk_remove_source(root, q, &done, &err), 0, "%s", err.msg);
	cr_assert_eq(done, WK_DISK_REMOVED_FILE | WK_DISK_REMOVED_DIR);
	snprintf(p, sizeof(p), "%s/u1", root);
	cr_assert(!exists(p));
	/* a repeat (a restart in between): nothing there, no error */
	snprintf(p, sizeof(p), "%s/u1/disk", root);
	done = 99;
	cr_assert_eq(wk_disk_remove_source(root, p, &done, &err), 0, "%s", err.msg);
	cr_assert_eq(done, 0);

	/* an instance directory with other files stays */
	snprintf(p, sizeof(p), "%s/u2", root);
	cr_assert_eq(mkdir(p, 0755), 0);
	snprintf(q, sizeof(q), "%s/u2/console.log", root);
	touch(q);
	snprintf(p, sizeof(p), "%s/u2/disk", root);
	touch(p);
	cr_assert_eq(wk_disk_remove_source(root, p, &done, &err), 0, "%s", err.msg);
	cr_assert_eq(done, WK_DISK_REMOVED_FILE);
	cr_assert(exists(q));

	/* an image right in the root: the root itself is never removed */
	snprintf(p, sizeof(p), "%s/disk", root);
	touch(p);
	cr_assert_eq(wk_disk_remove_source(root, p, &done, &err), 0, "%s", err.msg);
	cr_assert_eq(done, WK_DISK_REMOVED_FILE);
	cr_assert(exists(root));

	/* lexically outside, or with "..": refused, the file stays */
	snprintf(p, sizeof(p), "%s/disk", outside);
	touch(p);
	cr_assert_eq(wk_disk_remove_source(root, p, &done, &err), -EPERM);
	snprintf(q, sizeof(q), "%s/../%s/disk", root, strrchr(outside, '/') + 1);
	cr_assert_eq(wk_disk_remove_source(root, q, &done, &err), -EPERM);
	cr_assert(exists(p));

	/* a symlinked instance directory that leads out: refused */
	snprintf(q, sizeof(q), "%s/u3", root);
	cr_assert_eq(symlink(outside, q), 0);
	snprintf(q, sizeof(q), "%s/u3/disk", root);
	cr_assert_eq(wk_disk_remove_source(root, q, &done, &err), -EPERM);
	cr_assert(strstr(err.msg, "outside") != NULL, "%s", err.msg);
	cr_assert(exists(p));

	/* the image a symlink (to a file outside) or a directory: left alone */
	snprintf(q, sizeof(q), "%s/u2/disk", root);
	cr_assert_eq(symlink(p, q), 0);
	cr_assert_eq(wk_disk_remove_source(root, q, &done, &err), -EPERM);
	cr_assert(strstr(err.msg, "regular file") != NULL, "%s", err.msg);
	cr_assert(exists(p) && exists(q));
	unlink(q);
	cr_assert_eq(mkdir(q, 0755), 0);
	cr_assert_eq(wk_disk_remove_source(root, q, &done, &err), -EPERM);
	cr_assert(exists(q));

	snprintf(q, sizeof(q), "%s/u3", root);
	unlink(q);
	tu_tmpdir_remove(root);
	tu_tmpdir_remove(outside);
}
