/* arkend's own pieces shared between its files. */
#ifndef ARKEND_H
#define ARKEND_H

/* Registers GET /eventer/stats.json. */
void arkend_stats_register(void);

#endif
