/* The ASCII helpers against their definitions, whatever the locale. */
#include <ctype.h>
#include <locale.h>
#include <string.h>

#include "check.h"
#include "hugd/ascii.h"

int main(void)
{
    /* Compared with <ctype.h> in the C locale, where it is plain ASCII. */
    setlocale(LC_ALL, "C");
    for (int c = 0; c < 256; c++) {
        int tchar = c < 128 && (isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c)));
        CHECK_INT(ascii_is_tchar((unsigned char)c), tchar);
        CHECK_INT(ascii_is_digit((unsigned char)c), c < 128 && isdigit(c));
        CHECK_INT(ascii_upper((unsigned char)c), c < 128 ? toupper(c) : c);
        CHECK_INT(ascii_lower((unsigned char)c), c < 128 ? tolower(c) : c);
    }
    CHECK_INT(ascii_case_eq("Accept-EncodING", "accept-encoding", 15), 1);
    CHECK_INT(ascii_case_eq("100-CONTINUE", "100-continue", 12), 1);
    CHECK_INT(ascii_case_eq("100-continuf", "100-continue", 12), 0);
    CHECK_INT(ascii_case_eq("x", "y", 0), 1);
    /* Latin-1 letters are not ASCII letters: no case folding for them. */
    CHECK_INT(ascii_case_eq("\xc9", "\xe9", 1), 0);
    CHECK_INT(ascii_case_streq("INFO", "info"), 1);
    CHECK_INT(ascii_case_streq("info", "inf"), 0);
    CHECK_INT(ascii_case_streq("inf", "info"), 0);
    CHECK_INT(ascii_case_streq("", ""), 1);
    return CHECK_DONE();
}
