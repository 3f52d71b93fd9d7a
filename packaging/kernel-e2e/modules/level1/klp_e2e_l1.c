// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel e2e livepatch, level 1: /proc/version gains a marker. The replacement prints what
 * version_proc_show (fs/proc/version.c) prints, from the same utsname fields, and the marker.
 * Atomic replace: loading a later level takes this one out in the same transition.
 */
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/utsname.h>

static int klp_e2e_l1_version_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s version %s %s [hotpatch-e2e livepatch level 1]\n",
		   utsname()->sysname, utsname()->release, utsname()->version);
	return 0;
}

static struct klp_func funcs[] = {
	{ .old_name = "version_proc_show", .new_func = klp_e2e_l1_version_proc_show },
	{ }
};

static struct klp_object objs[] = {
	{ .name = NULL /* vmlinux */, .funcs = funcs },
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
	.replace = true,
};

static int __init klp_e2e_l1_init(void)
{
	return klp_enable_patch(&patch);
}

static void __exit klp_e2e_l1_exit(void)
{
}

module_init(klp_e2e_l1_init);
module_exit(klp_e2e_l1_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("hotpatch-agent kernel e2e: livepatch level 1 (/proc/version marker)");
MODULE_INFO(livepatch, "Y");
