// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel e2e livepatch, level 3 (the blocker scenario): cumulative like a real level, it carries
 * level 2's function with its own /proc/version marker and also replaces klp_e2e_busy_wait in the
 * klp_e2e_busy module. A task sleeping in that function (a reader of /proc/klp_e2e_busy) keeps
 * the transition from completing until it wakes; the replacement names itself in what the read
 * returns.
 */
#include <linux/atomic.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/utsname.h>
#include <linux/wait.h>

/* The layout klp_e2e_busy.c defines. */
struct klp_e2e_busy {
	wait_queue_head_t wq;
	atomic_t releases;
};

static int klp_e2e_l3_version_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s version %s %s [hotpatch-e2e livepatch level 3]\n",
		   utsname()->sysname, utsname()->release, utsname()->version);
	return 0;
}

static int klp_e2e_l3_busy_wait(struct klp_e2e_busy *b, int seen, bool sleep_interruptible,
				char *text, size_t size)
{
	int err;

	if (sleep_interruptible)
		err = wait_event_interruptible(b->wq, atomic_read(&b->releases) != seen);
	else
		err = wait_event_killable(b->wq, atomic_read(&b->releases) != seen);
	if (err)
		return err;
	return scnprintf(text, size, "klp_e2e_busy: woken in the level 3 function\n");
}

static struct klp_func vmlinux_funcs[] = {
	{ .old_name = "version_proc_show", .new_func = klp_e2e_l3_version_proc_show },
	{ }
};

static struct klp_func busy_funcs[] = {
	{ .old_name = "klp_e2e_busy_wait", .new_func = klp_e2e_l3_busy_wait },
	{ }
};

static struct klp_object objs[] = {
	{ .name = NULL /* vmlinux */, .funcs = vmlinux_funcs },
	{ .name = "klp_e2e_busy", .funcs = busy_funcs },
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
	.replace = true,
};

static int __init klp_e2e_l3_init(void)
{
	return klp_enable_patch(&patch);
}

static void __exit klp_e2e_l3_exit(void)
{
}

module_init(klp_e2e_l3_init);
module_exit(klp_e2e_l3_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("hotpatch-agent kernel e2e: livepatch level 3, held up by a task sleeping in klp_e2e_busy_wait");
MODULE_INFO(livepatch, "Y");
