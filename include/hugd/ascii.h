/* ASCII character classes and case for protocol text.
 *
 * <ctype.h> and strcasecmp() follow LC_CTYPE, and the embedded interpreter
 * sets LC_CTYPE from the environment: under tr_TR.UTF-8 toupper('i') is 'i'
 * (its upper case, U+0130, is not one byte), so a locale-aware conversion
 * turns Accept-Encoding into HTTP_ACCEPT_ENCODiNG.  HTTP names, methods and
 * status codes are ASCII whatever the locale; these functions never look at
 * it.  Bytes >= 0x80 are never letters, digits or token characters here. */
#ifndef HUGD_ASCII_H
#define HUGD_ASCII_H

#include <stdbool.h>
#include <stddef.h>

static inline bool ascii_is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

static inline unsigned char ascii_upper(unsigned char ch)
{
    return ch >= 'a' && ch <= 'z' ? (unsigned char)(ch - ('a' - 'A')) : ch;
}

static inline unsigned char ascii_lower(unsigned char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch + ('a' - 'A')) : ch;
}

/* The value of a hex digit, or -1. */
static inline int ascii_hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.  A table: header
 * names from the app are checked byte by byte on every response. */
static inline bool ascii_is_tchar(unsigned char ch)
{
    static const unsigned char tchar[256] = {
        /* 0x00 - 0x0f: controls */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        /* 0x10 - 0x1f: controls */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        /* SP ! " # $ % & ' ( ) * + , - . / */
        0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0,
        /* 0-9 : ; < = > ? */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
        /* @ A-O */
        0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        /* P-Z [ \ ] ^ _ */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
        /* ` a-o */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        /* p-z { | } ~ DEL */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
        /* 0x80 - 0xff: zero */
    };
    return tchar[ch];
}

/* The n bytes at a and b are equal but for ASCII case. */
static inline bool ascii_case_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
            return false;
    return true;
}

/* NUL-terminated a and b are equal but for ASCII case. */
static inline bool ascii_case_streq(const char *a, const char *b)
{
    for (;; a++, b++) {
        if (ascii_lower((unsigned char)*a) != ascii_lower((unsigned char)*b))
            return false;
        if (!*a)
            return true;
    }
}

#endif
