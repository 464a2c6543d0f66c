/* A library that does nothing: it stands for someone else's LD_PRELOAD in
 * the launcher test, which looks for it in /proc/self/maps. */
int obs_marker_present(void);

int obs_marker_present(void)
{
    return 1;
}
