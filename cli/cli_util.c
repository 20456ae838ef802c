/* What several commands share: checks of names and ids, values read from
 * files, stdin or the terminal (without echo for secrets), confirmations. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

const char *const cli_name_rule =
        "app names are DNS labels: 1-63 lowercase letters, digits and '-', not starting or "
        "ending with '-'";

/* The terminal's settings while echo is off, for the signal handler. */
static struct termios saved_tty;
static volatile sig_atomic_t echo_off;

bool cli_app_ok(const char *name)
{
	if (viv_app_name_valid(name))
		return true;
	fprintf(stderr, "viv: \"");
	cli_print_safe(stderr, name, strlen(name), false);
	fprintf(stderr, "\" is not a valid app name: %s\n", cli_name_rule);
	return false;
}

bool cli_id_ok(const char *s, long long *out)
{
	long long v = 0;
	size_t i;

	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 18)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (i == 0 || v == 0)
		return false;
	*out = v;
	return true;
}

void cli_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

enum viv_err cli_read_value(const char *arg, char **out, size_t *len_out)
{
	enum viv_err err;

	*out = NULL;
	*len_out = 0;
	if (strcmp(arg, "-") == 0) {
		err = viv_read_fd(0, CLI_VALUE_MAX, out, len_out);
		if (err == VIV_ERR_TOO_BIG)
			fprintf(stderr,
			        "viv: stdin holds more than %u MiB, the most a value may be\n",
			        CLI_VALUE_MAX >> 20);
		else if (err)
			fprintf(stderr, "viv: cannot read stdin: %s\n", viv_strerror(err));
		return err;
	}
	if (arg[0] == '@') {
		err = viv_read_file(arg + 1, CLI_VALUE_MAX, out, len_out);
		if (err == VIV_ERR_TOO_BIG)
			fprintf(stderr, "viv: %s is larger than %u MiB, the most a value may be\n",
			        arg + 1, CLI_VALUE_MAX >> 20);
		else if (err == VIV_ERR_NOT_FOUND)
			fprintf(stderr,
			        "viv: there is no file %s (a value starting with '@' names "
			        "a file; send text starting with '@' on stdin with -)\n",
			        arg + 1);
		else if (err)
			fprintf(stderr, "viv: cannot read %s: %s\n", arg + 1, viv_strerror(err));
		return err;
	}
	*len_out = strlen(arg);
	*out = strdup(arg);
	if (!*out) {
		fprintf(stderr, "viv: out of memory\n");
		return VIV_ERR_NOMEM;
	}
	return VIV_OK;
}

/* Puts the terminal back as it was, then dies of the signal as it would
 * have: Ctrl-C at the prompt must not leave a terminal without echo. */
static void restore_and_die(int sig)
{
	if (echo_off)
		tcsetattr(0, TCSAFLUSH, &saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Reads one line from the terminal on fd 0 into b (without its end). */
static enum viv_err read_tty_line(struct viv_buf *b)
{
	char ch;
	ssize_t n;

	for (;;) {
		n = read(0, &ch, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || ch == '\n')
			return VIV_OK;
		if (ch == '\r')
			continue;
		if (viv_buf_append(b, &ch, 1))
			return VIV_ERR_TOO_BIG;
	}
}

enum viv_err cli_read_secret(const char *prompt, char **out, size_t *len_out)
{
	struct sigaction sa = {.sa_handler = restore_and_die}, old_int, old_term;
	struct termios quiet;
	struct viv_buf b;
	enum viv_err err;

	*out = NULL;
	*len_out = 0;
	if (!isatty(0)) {
		err = cli_read_value("-", out, len_out);
		if (!err && *len_out > 0 && (*out)[*len_out - 1] == '\n')
			(*out)[--*len_out] = '\0';
		if (!err && *len_out > 0 && (*out)[*len_out - 1] == '\r')
			(*out)[--*len_out] = '\0';
		return err;
	}
	if (tcgetattr(0, &saved_tty) != 0) {
		fprintf(stderr, "viv: cannot read the terminal's settings: %s\n", strerror(errno));
		return VIV_ERR_IO;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	quiet = saved_tty;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	/* Echo goes off before the prompt shows: what is typed as soon as it
	 * shows must not be echoed, nor be flushed away unread. */
	echo_off = 1;
	tcsetattr(0, TCSAFLUSH, &quiet);
	fprintf(stderr, "%s", prompt);
	fflush(stderr);
	viv_buf_init(&b, CLI_VALUE_MAX);
	err = read_tty_line(&b);
	tcsetattr(0, TCSAFLUSH, &saved_tty);
	echo_off = 0;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	fprintf(stderr, "\n");
	if (err) {
		fprintf(stderr, "viv: the value is longer than %u MiB\n", CLI_VALUE_MAX >> 20);
		viv_buf_free(&b);
		return err;
	}
	*len_out = b.len;
	*out = viv_buf_steal(&b);
	if (!*out) {
		fprintf(stderr, "viv: out of memory\n");
		return VIV_ERR_NOMEM;
	}
	return VIV_OK;
}

bool cli_confirm(const char *question, const char *word)
{
	struct viv_buf b;
	bool yes;

	fprintf(stderr, "%s", question);
	fflush(stderr);
	viv_buf_init(&b, 256);
	yes = read_tty_line(&b) == VIV_OK && b.data && strcmp(b.data, word) == 0;
	viv_buf_free(&b);
	return yes;
}
