/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_disk: the local disks of a block migration.
 *
 * Source side: which disks of a domain are local (its XML: file-backed,
 * device "disk", neither read-only nor shareable, below
 * libvirt.instances_path; everything else is a shared or network volume
 * that is never copied) and their description in nova's
 * get_instance_disk_info form, the `disk` argument of pre_live_migration.
 *
 * Destination side: that argument parsed and checked, and every image it
 * names created below libvirt.instances_path with /usr/bin/qemu-img
 * (spawned directly, no shell), as nova's _create_images_and_backing does;
 * what was created is recorded so that a rollback removes exactly that.
 *
 * No logging, no globals; any thread.  Errors are -errno with reterr.
 */
#ifndef WK_DISK_H
#define WK_DISK_H

#include <stdbool.h>

#include <jansson.h>

#include "wk_util.h"

#define WK_DISK_MAX      32   /* local disks of one instance */
#define WK_DISK_PATH_MAX 1024 /* bytes of a path, with the NUL */
#define WK_DISK_QEMU_IMG "/usr/bin/qemu-img"

/* One local disk, as nova's libvirt driver describes it. */
struct wk_disk {
	char target[32]; /* "vda"; "" when the sender did not say (nova) */
	char path[WK_DISK_PATH_MAX];
	char type[16];            /* image format: "qcow2" or "raw" */
	long long virt_disk_size; /* bytes the guest sees */
	long long disk_size;      /* bytes allocated on the source; -1 unknown */
	/* "" for none; an absolute path, or (as nova sends it) a file name in
	 * <instances_path>/_base */
	char backing_file[WK_DISK_PATH_MAX];
	char backing_format[16]; /* "" = raw (nova's _base images) */
};

struct wk_disk_list {
	int n;
	struct wk_disk disk[WK_DISK_MAX];
};

/* How the destination's images are to be filled. */
enum wk_disk_copy {
	WK_DISK_COPY_NONE,        /* no local disk */
	WK_DISK_COPY_FULL,        /* VIR_MIGRATE_NON_SHARED_DISK */
	WK_DISK_COPY_INCREMENTAL, /* VIR_MIGRATE_NON_SHARED_INC: every backing file is there */
};

/* "none", "full", "incremental"; and back (-EINVAL for anything else). */
const char *wk_disk_copy_name(enum wk_disk_copy c);
int wk_disk_copy_parse(const char *s, enum wk_disk_copy *ret);

/* Lexical check of path against instances_path: absolute, below it, no
 * empty, "." or ".." component, no control character, shorter than
 * WK_DISK_PATH_MAX.  0 or -EINVAL with reterr. */
int wk_disk_path_check(const char *instances_path, const char *path, struct wk_err *reterr);

/* Source: the local disks of domain XML xml (sizes left -1 for the caller
 * to fill).  -EOPNOTSUPP for a local disk in a format other than qcow2 or
 * raw, -E2BIG beyond WK_DISK_MAX, -EINVAL for XML that does not parse. */
int wk_disk_from_domain_xml(const char *xml, const char *instances_path,
    struct wk_disk_list *ret_list, struct wk_err *reterr);

/* Nova's get_instance_disk_info list (type, path, virt_disk_size,
 * backing_file, disk_size, over_committed_disk_size) plus ferry's
 * target_dev and backing_format; new reference or NULL. */
json_t *wk_disk_list_to_json(const struct wk_disk_list *l);

/* Destination: pre_live_migration's `disk` argument (NULL or null: no
 * disk; a JSON string, as nova sends it, or an array) into ret_list, every
 * entry checked (format, sizes, paths against instances_path, duplicates).
 * -EINVAL with reterr naming the entry and key at fault. */
int wk_disk_list_from_arg(
    json_t *disk, const char *instances_path, struct wk_disk_list *ret_list, struct wk_err *reterr);

/* Destination: creates every image of l (checked by wk_disk_list_from_arg)
 * with qemu_img (normally WK_DISK_QEMU_IMG).  Each file and directory it
 * creates is appended to created (a JSON array, see
 * wk_disk_remove_created) before it is made.  The realpath of each image's
 * directory must be below the realpath of instances_path (a symlink cannot
 * lead out); only the instance's own directory (instances_path/<name>) is
 * created when missing; an existing file is never touched (-EEXIST).
 * Images get their backing file when every disk has one and it is present
 * here (incremental copy), else they are created whole (full copy).  On
 * failure what this call created is removed again.  *ret_copy says which. */
int wk_disk_create_all(const char *instances_path, const char *qemu_img,
    const struct wk_disk_list *l, json_t *created, enum wk_disk_copy *ret_copy,
    struct wk_err *reterr);

/* Removes what created lists ({"path": p, "kind": "file"|"dir"}), newest
 * first: files unlinked, directories removed when empty.  Entries it
 * removed (or that are gone) leave the array.  0, or the first -errno with
 * reterr (the rest is still tried). */
int wk_disk_remove_created(json_t *created, struct wk_err *reterr);

/* What wk_disk_remove_source did (bits of *ret_done). */
#define WK_DISK_REMOVED_FILE 1 /* the image was unlinked */
#define WK_DISK_REMOVED_DIR  2 /* and its instance directory, then empty */

/* Source, after a completed block migration (nova's cleanup with
 * destroy_disks): removes the local image d->path that was sent to the
 * destination.  The same checks as the destination's: the path lexically
 * below instances_path (wk_disk_path_check), the realpath of its directory
 * below the realpath of instances_path (a symlink cannot lead out), and the
 * path itself a regular file (not a symlink, directory or device).  Then
 * the instance's own directory (right below instances_path) is removed when
 * it is empty; nothing else ever is.  An image already gone is not an error
 * (*ret_done without WK_DISK_REMOVED_FILE): a repeat after a restart is
 * harmless.  -EPERM for a path that fails a check, -errno of the removal,
 * with reterr. */
int wk_disk_remove_source(
    const char *instances_path, const char *path, unsigned *ret_done, struct wk_err *reterr);

#endif /* WK_DISK_H */
