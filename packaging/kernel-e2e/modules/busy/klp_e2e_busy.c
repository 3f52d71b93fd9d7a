// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel e2e target module (not a livepatch): a task that reads /proc/klp_e2e_busy sleeps inside
 * klp_e2e_busy_wait() until someone writes to that file. Level 3 patches klp_e2e_busy_wait, so a
 * sleeping reader holds the function on its kernel stack and keeps a livepatch transition from
 * completing (the way kernel selftests hold one up with a busy module's work function).
 * The parameter "interruptible" chooses the sleep: 0 (default) sleeps killable, which the kernel's
 * fake signal does not wake; 1 sleeps interruptible, which it does (the read is then restarted).
 */
#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

/* Shared with the livepatch that replaces klp_e2e_busy_wait (level 3 defines the same layout). */
struct klp_e2e_busy {
	wait_queue_head_t wq;
	atomic_t releases;
};

static struct klp_e2e_busy busy;
static bool interruptible;
module_param(interruptible, bool, 0644);
MODULE_PARM_DESC(interruptible, "readers sleep interruptible (1) or killable (0)");

/*
 * Sleeps until the release count differs from seen, then writes which function did the waiting.
 * Not inlined or cloned, so that it is its own symbol on the sleeping task's stack and in kallsyms.
 */
noinline __attribute__((__noipa__)) int klp_e2e_busy_wait(struct klp_e2e_busy *b, int seen,
							  bool sleep_interruptible, char *text, size_t size)
{
	int err;

	if (sleep_interruptible)
		err = wait_event_interruptible(b->wq, atomic_read(&b->releases) != seen);
	else
		err = wait_event_killable(b->wq, atomic_read(&b->releases) != seen);
	if (err)
		return err;
	return scnprintf(text, size, "klp_e2e_busy: woken in the original function\n");
}

static ssize_t busy_read(struct file *file, char __user *buf, size_t count, loff_t *pos)
{
	char text[96];
	int len;

	if (*pos)
		return 0;
	len = klp_e2e_busy_wait(&busy, atomic_read(&busy.releases), READ_ONCE(interruptible), text, sizeof(text));
	if (len < 0)
		return len;
	return simple_read_from_buffer(buf, count, pos, text, len);
}

static ssize_t busy_write(struct file *file, const char __user *buf, size_t count, loff_t *pos)
{
	atomic_inc(&busy.releases);
	wake_up_all(&busy.wq);
	return count;
}

static const struct proc_ops busy_proc_ops = {
	.proc_read = busy_read,
	.proc_write = busy_write,
	.proc_lseek = noop_llseek,
};

static int __init klp_e2e_busy_init(void)
{
	init_waitqueue_head(&busy.wq);
	atomic_set(&busy.releases, 0);
	if (!proc_create("klp_e2e_busy", 0600, NULL, &busy_proc_ops))
		return -ENOMEM;
	return 0;
}

static void __exit klp_e2e_busy_exit(void)
{
	remove_proc_entry("klp_e2e_busy", NULL);
}

module_init(klp_e2e_busy_init);
module_exit(klp_e2e_busy_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("hotpatch-agent kernel e2e: a function a reader sleeps in, for a held-up livepatch transition");
