namespace KmemGuard.Analyzers.Flow;

/// <summary>
/// The blocks still to visit, taken lowest ordinal first (so a loop's body settles before what follows
/// it). A flag per block rather than a sorted set: adding and taking allocate nothing.
/// </summary>
internal sealed class Worklist
{
    private readonly bool[] pending;
    private int lowest;
    private int count;

    public Worklist(int blocks)
    {
        pending = new bool[blocks];
        lowest = blocks;
    }

    public bool IsEmpty => count == 0;

    public void Add(int ordinal)
    {
        if (pending[ordinal])
            return;
        pending[ordinal] = true;
        count++;
        if (ordinal < lowest)
            lowest = ordinal;
    }

    public int TakeLowest()
    {
        while (!pending[lowest])
            lowest++;
        pending[lowest] = false;
        count--;
        return lowest;
    }
}
