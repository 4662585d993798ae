/*
 * libmtev-style XML configuration: load a file (or a string), then read values by XPath
 * relative to sections.
 *
 * A configuration is one XML document, e.g.
 *
 *     <myapp>
 *       <eventer><config><concurrency>4</concurrency></config></eventer>
 *       <listeners><listener type="echo" address="*" port="8000"/></listeners>
 *     </myapp>
 *
 * A section is a node of that document. Paths are XPath 1.0 expressions: an absolute path
 * ("/myapp/listeners") is evaluated from the document; a relative path is evaluated from the
 * section and, for the value getters, with inheritance: "port" asked of a <listener> finds the
 * listener's own `port` attribute or element first, else the nearest ancestor's. A value is an
 * attribute's value ("@port" or the bare name of an attribute through inheritance) or an
 * element's text content.
 *
 * Thread: load and unload from one thread while nothing else reads; the getters may then be
 * called from any thread. Sections stay valid until the next load or mtev_conf_unload().
 */
#ifndef MTEV_CONF_H
#define MTEV_CONF_H

#include <mtev_defines.h>

#include <stddef.h>
#include <stdint.h>

ARK_BEGIN_DECLS

/* A node of the loaded document, passed by value. Opaque. */
typedef struct {
    void *opaque1;
} mtev_conf_section_t;

/* The document itself: paths given with it are evaluated from the top. */
ARK_EXTERN extern const mtev_conf_section_t MTEV_CONF_ROOT;
/* No section: what a failed lookup returns. */
ARK_EXTERN extern const mtev_conf_section_t MTEV_CONF_EMPTY;

/*
 * Sets the expected name of the root element (the application name). A loaded document with
 * a different root element is refused. NULL accepts any root. Call before loading.
 */
ARK_EXTERN void mtev_conf_init(const char *toplevel);

/*
 * Reads and parses the XML file at `path`, replacing any loaded configuration.
 * Returns 0, or -1 after logging to mtev_error a line "path:line: problem" (the file cannot
 * be read, is not well-formed XML, or has the wrong root element); on -1 the previous
 * configuration stays loaded.
 */
ARK_EXTERN int mtev_conf_load(const char *path);

/*
 * Parses `xml` (NUL-terminated) as mtev_conf_load() does a file; `label` names it in error
 * messages (NULL = "<string>"). Returns 0 or -1.
 */
ARK_EXTERN int mtev_conf_load_string(const char *label, const char *xml);

/* Returns true when a configuration is loaded. */
ARK_EXTERN mtev_boolean mtev_conf_is_loaded(void);

/* Frees the loaded configuration; every section becomes invalid. */
ARK_EXTERN void mtev_conf_unload(void);

/* Returns true when `section` is MTEV_CONF_EMPTY (a failed lookup). */
ARK_EXTERN mtev_boolean mtev_conf_section_is_empty(mtev_conf_section_t section);

/*
 * Returns the first node matching `path` from `base` (MTEV_CONF_ROOT for the top), or
 * MTEV_CONF_EMPTY. Pair with mtev_conf_release_section_read().
 */
ARK_EXTERN mtev_conf_section_t mtev_conf_get_section_read(mtev_conf_section_t base,
                                                          const char *path);
/* Ends the use of a section returned by mtev_conf_get_section_read(). */
ARK_EXTERN void mtev_conf_release_section_read(mtev_conf_section_t section);
/* The same as mtev_conf_get_section_read() (libmtev's older name). */
ARK_EXTERN mtev_conf_section_t mtev_conf_get_section(mtev_conf_section_t base, const char *path);

/*
 * Returns every node matching `path` from `base`, in document order, as a malloc'd array
 * whose length is stored in `*count` (0 and NULL when nothing matches). Release it with
 * mtev_conf_release_sections_read().
 */
ARK_EXTERN mtev_conf_section_t *mtev_conf_get_sections_read(mtev_conf_section_t base,
                                                            const char *path, int *count);
/* Frees an array from mtev_conf_get_sections_read(). */
ARK_EXTERN void mtev_conf_release_sections_read(mtev_conf_section_t *sections, int count);
/* The same as mtev_conf_get_sections_read() (libmtev's older name); free the array with free(). */
ARK_EXTERN mtev_conf_section_t *mtev_conf_get_sections(mtev_conf_section_t base, const char *path,
                                                       int *count);

/*
 * Returns 1 and stores a malloc'd copy of the value at `path` (inheriting, see above) in
 * `*value` (the caller frees it), or returns 0 and leaves `*value` untouched.
 */
ARK_EXTERN int mtev_conf_get_string(mtev_conf_section_t section, const char *path, char **value);
/* Copies the value into `buffer` (truncated, NUL-terminated). Returns 1 if found, else 0. */
ARK_EXTERN int mtev_conf_get_stringbuf(mtev_conf_section_t section, const char *path, char *buffer,
                                       int capacity);
/*
 * Numeric and boolean getters: return 1 and store the value when it is present and valid,
 * 0 otherwise (a present but malformed value is logged to mtev_error and returns 0).
 * Booleans accept true/false, on/off, yes/no, 1/0.
 */
ARK_EXTERN int mtev_conf_get_int32(mtev_conf_section_t section, const char *path, int32_t *value);
ARK_EXTERN int mtev_conf_get_int64(mtev_conf_section_t section, const char *path, int64_t *value);
ARK_EXTERN int mtev_conf_get_uint32(mtev_conf_section_t section, const char *path, uint32_t *value);
ARK_EXTERN int mtev_conf_get_double(mtev_conf_section_t section, const char *path, double *value);
ARK_EXTERN int mtev_conf_get_boolean(mtev_conf_section_t section, const char *path,
                                     mtev_boolean *value);

/*
 * Calls `visit(key, value, closure)` for each child element of the nodes matched by the
 * relative `path` (e.g. "config") on `section` and on each of its ancestors, outermost
 * ancestor first, so a caller storing pairs in a map ends with the nearest definitions
 * (libmtev's mtev_conf_get_hash semantics). Returns the number of pairs visited.
 */
ARK_EXTERN int mtev_conf_foreach_pair(mtev_conf_section_t section, const char *path,
                                      void (*visit)(const char *key, const char *value,
                                                    void *closure),
                                      void *closure);

/*
 * Copies the element name of `section` into `buffer` (NUL-terminated, truncated). Returns 1,
 * or 0 for an empty section.
 */
ARK_EXTERN int mtev_conf_section_name(mtev_conf_section_t section, char *buffer, size_t capacity);

/* Returns the libxml2 node (xmlNodePtr) behind `section`, or NULL. */
ARK_EXTERN void *mtev_conf_section_to_xmlnodeptr(mtev_conf_section_t section);

/*
 * Applies the <logs> section: each `log` element below it with a `name` attribute, and
 * `disabled="true"|"false"`, switches that stream off or on (see mtev_log.h). `toplevel` is
 * ignored (kept for libmtev's signature). Returns the number of streams configured.
 */
ARK_EXTERN int mtev_conf_log_init(const char *toplevel);

ARK_END_DECLS

#endif
