/* Placeholder entry point; replaced by the real edge. */
int main(void)
{
    return 0;
}
