/* Unit tests for common/err.c. */
#include "common/err.h"
#include "tests/unit/tap.h"

TEST(err_set_returns_code_and_formats)
{
	struct err e;
	err_clear(&e);
	CHECK(!err_isset(&e));
	CHECK_INT(err_set(&e, -EINVAL, "%s: expected a string", "feature.fs.mode"), ==, -EINVAL);
	CHECK(err_isset(&e));
	CHECK_STR(e.msg, "feature.fs.mode: expected a string");
}

TEST(err_set_errno_appends_strerror)
{
	struct err e;
	err_set_errno(&e, -ENOENT, "open %s", "/x");
	CHECK_STR(e.msg, "open /x: No such file or directory");
	CHECK_INT(e.code, ==, -ENOENT);
}

TEST(err_prefix_adds_context_outermost_first)
{
	struct err e;
	err_set(&e, -EACCES, "permission denied");
	CHECK_INT(err_prefix(&e, "mounting %s", "/mnt"), ==, -EACCES);
	err_prefix(&e, "sandbox");
	CHECK_STR(e.msg, "sandbox: mounting /mnt: permission denied");
}

TEST(err_prefix_on_unset_error_is_never_success)
{
	struct err e;
	err_clear(&e);
	CHECK_INT(err_prefix(&e, "context"), ==, -EIO);
	CHECK_STR(e.msg, "context");
}

TEST(err_null_is_accepted)
{
	CHECK_INT(err_set(NULL, -E2BIG, "x"), ==, -E2BIG);
	CHECK_INT(err_set_errno(NULL, -E2BIG, "x"), ==, -E2BIG);
	CHECK_INT(err_prefix(NULL, "x"), ==, -EIO);
}

TEST(err_long_messages_truncate_safely)
{
	struct err e;
	char big[3000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	err_set(&e, -EINVAL, "%s", big);
	CHECK_UINT(strlen(e.msg), ==, ERR_MSG_MAX - 1);
	err_prefix(&e, "%s", big);
	CHECK_UINT(strlen(e.msg), ==, ERR_MSG_MAX - 1);
}

TAP_MAIN()
