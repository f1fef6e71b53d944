using System;
using System.Collections.Generic;
using System.Threading;
using KmemGuard;
using static KmemGuard.Kernel;

namespace Scull;

/// <summary>
/// The hardware behind the "short" driver: a receiver with a small FIFO, a data register that
/// pops it, a status register and a control register. Bytes that arrive raise its interrupt line
/// while interrupts are enabled in the control register, as a UART does.
/// </summary>
public sealed class short_hw : IMmioDevice
{
    public const int SHORT_DATA = 0x0;
    public const int SHORT_STATUS = 0x4;
    public const int SHORT_CONTROL = 0x8;

    /// <summary>STATUS: the FIFO holds at least one byte. Reads of DATA clear it once the FIFO is empty.</summary>
    public const byte SHORT_RX_READY = 0x01;
    /// <summary>STATUS: a byte arrived while the FIFO was full and was lost (write 1 to clear).</summary>
    public const byte SHORT_OVERRUN = 0x02;
    /// <summary>CONTROL: raise the interrupt line when bytes arrive.</summary>
    public const byte SHORT_IRQ_ENABLE = 0x01;

    public const int FifoDepth = 16;

    private readonly Machine _machine;
    private readonly int _irq;
    private readonly Queue<byte> _fifo = new();
    private readonly object _gate = new();
    private byte _control;
    private bool _overrun;

    public short_hw(Machine machine, int irq)
    {
        _machine = machine;
        _irq = irq;
    }

    /// <summary>The outside world sends bytes to the device: each one is latched and interrupts the CPU.</summary>
    public void receive(ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
        {
            bool raise;
            lock (_gate)
            {
                if (_fifo.Count == FifoDepth) _overrun = true;
                else _fifo.Enqueue(b);
                raise = (_control & SHORT_IRQ_ENABLE) != 0;
            }
            if (raise) _machine.RaiseIrq(_irq);
        }
    }

    public ulong Read(ulong offset, int size)
    {
        lock (_gate)
        {
            switch (offset)
            {
                case SHORT_DATA: return _fifo.Count > 0 ? _fifo.Dequeue() : 0UL;
                case SHORT_STATUS: return (_fifo.Count > 0 ? SHORT_RX_READY : 0u) | (_overrun ? SHORT_OVERRUN : 0u);
                case SHORT_CONTROL: return _control;
                default: return 0xff; // an unbacked register reads as all ones on an ISA-like bus
            }
        }
    }

    public void Write(ulong offset, int size, ulong value)
    {
        lock (_gate)
        {
            switch (offset)
            {
                case SHORT_STATUS when (value & SHORT_OVERRUN) != 0: _overrun = false; break;
                case SHORT_CONTROL: _control = (byte)value; break;
            }
        }
    }
}

/// <summary>
/// The "short" driver of LDD3 chapter 10, interrupt-driven: the top half (hard irq) drains the
/// FIFO into a record allocated with GFP_ATOMIC and queues it under an irq-safe spinlock; the
/// bottom half (a tasklet) moves the bytes into a page-sized circular buffer and wakes readers,
/// who copy to user space in process context. Nothing that may sleep runs in either half.
/// </summary>
public sealed class short_dev
{
    public const ulong SHORT_BASE = 0xfe000000;
    public const int SHORT_NR_PORTS = 0x1000;
    public const int SHORT_IRQ = 7;

    /// <summary><c>struct short_event { struct short_event *next; u32 len; u8 data[16]; }</c> in kernel memory.</summary>
    private const int EventNext = 0, EventLen = 8, EventData = 12, EventSize = EventData + short_hw.FifoDepth;

    private IoMem _regs;
    private readonly int _irq;
    private ulong _buffer;                 // one page, circular; written by the tasklet only
    private int _head, _tail;              // guarded by _lock: the tasklet advances head, readers tail
    private KPtr _pending;                 // events queued by the top half, newest first, guarded by _lock
    private readonly spinlock_t _lock = new();
    private readonly tasklet_struct _tasklet = new();
    private readonly wait_queue_head_t _queue = new();
    private long _dropped;

    private short_dev(int irq)
    {
        _irq = irq;
        spin_lock_init(_lock);
        init_waitqueue_head(_queue);
    }

    /// <summary>Bytes lost because the circular buffer was full, or the record allocation failed.</summary>
    public long dropped => Interlocked.Read(ref _dropped);

    public static readonly file_operations short_fops = new()
    {
        open = (inode, filp) => { filp.private_data = inode.i_private; return 0; },
        read = short_read,
        release = (inode, filp) => 0,
    };

    /// <summary>Module init: map the registers, get the buffer page, hook the interrupt, enable it.</summary>
    public static short_dev? short_init(int irq = SHORT_IRQ)
    {
        var dev = new short_dev(irq);
        dev._regs = ioremap(SHORT_BASE, SHORT_NR_PORTS);
        if (dev._regs.IsNull) return null; // refused (RAM at that address) or no room left in the ioremap area
        dev._buffer = __get_free_pages(GFP_KERNEL, 0);
        if (dev._buffer == 0)
        {
            iounmap(dev._regs);
            return null;
        }
        tasklet_init(dev._tasklet, dev.short_do_tasklet, 0);
        if (request_irq(irq, dev.short_interrupt, 0, "short", dev) != 0)
        {
            free_page(dev._buffer);
            iounmap(dev._regs);
            return null;
        }
        iowrite8(short_hw.SHORT_IRQ_ENABLE, dev._regs + short_hw.SHORT_CONTROL);
        return dev;
    }

    /// <summary>Top half: hard-irq context, so GFP_ATOMIC, and no sleeping lock.</summary>
    private irqreturn_t short_interrupt(int irq, object? dev_id)
    {
        if ((ioread8(_regs + short_hw.SHORT_STATUS) & short_hw.SHORT_RX_READY) == 0)
            return IRQ_NONE; // not ours: the line may be shared

        KPtr ev = kmalloc(EventSize, GFP_ATOMIC);
        int len = 0;
        while ((ioread8(_regs + short_hw.SHORT_STATUS) & short_hw.SHORT_RX_READY) != 0)
        {
            byte b = ioread8(_regs + short_hw.SHORT_DATA);
            // Without memory the byte is still read, or the device would interrupt forever.
            if (!ev.IsNull && len < short_hw.FifoDepth) ev[EventData + len++] = b;
            else Interlocked.Increment(ref _dropped);
        }
        if (ev.IsNull) return IRQ_HANDLED;
        ev.Write(EventLen, len);

        // irqsave although hard irqs are already off here: the same lock is taken by the tasklet and readers.
        spin_lock_irqsave(_lock, out ulong flags);
        ev.Write(EventNext, _pending);
        _pending = ev;
        spin_unlock_irqrestore(_lock, flags);

        tasklet_schedule(_tasklet);
        return IRQ_HANDLED;
    }

    /// <summary>Bottom half: softirq context, still atomic. Moves the queued bytes into the circular buffer.</summary>
    private void short_do_tasklet(ulong data)
    {
        spin_lock_irqsave(_lock, out ulong flags);
        KPtr list = _pending;
        _pending = NULL;
        spin_unlock_irqrestore(_lock, flags);

        // The top half pushes newest first; reverse to deliver bytes in arrival order.
        KPtr ordered = NULL;
        while (!list.IsNull)
        {
            KPtr next = list.Read<KPtr>(EventNext);
            list.Write(EventNext, ordered);
            ordered = list;
            list = next;
        }

        var buffer = (KPtr)_buffer;
        for (KPtr ev = ordered; !ev.IsNull;)
        {
            int len = ev.Read<int>(EventLen);
            spin_lock_irqsave(_lock, out flags);
            for (int i = 0; i < len; i++)
            {
                int next = (_head + 1) % PAGE_SIZE;
                if (next == _tail) { Interlocked.Increment(ref _dropped); continue; } // full: drop, never block
                buffer[_head] = ev[EventData + i];
                _head = next;
            }
            spin_unlock_irqrestore(_lock, flags);
            KPtr done = ev;
            ev = ev.Read<KPtr>(EventNext);
            kfree(done); // kfree never sleeps: fine in a tasklet
        }
        wake_up(_queue);
    }

    /// <summary>
    /// Reads what has arrived: blocks until there is something (or returns -EAGAIN with O_NONBLOCK),
    /// then copies one contiguous run of the circular buffer. copy_to_user may sleep, so it runs
    /// outside the spinlock; only this reader moves the tail, so the bytes cannot change meanwhile.
    /// </summary>
    public static long short_read(file filp, byte[] buf, size_t count, ref long f_pos)
    {
        var dev = (short_dev)filp.private_data!;
        if ((filp.f_flags & fcntl.O_NONBLOCK) != 0 && dev.short_available() == 0) return -errno.EAGAIN;
        wait_event(dev._queue, () => dev.short_available() > 0);

        spin_lock_irqsave(dev._lock, out ulong flags);
        int head = dev._head, tail = dev._tail;
        spin_unlock_irqrestore(dev._lock, flags);

        long run = head > tail ? head - tail : PAGE_SIZE - tail;
        long n = (long)Math.Min(count.Value, (ulong)run);
        if (copy_to_user(buf, (KPtr)dev._buffer + tail, n) != 0) return -errno.EFAULT;

        spin_lock_irqsave(dev._lock, out flags);
        dev._tail = (int)((tail + n) % PAGE_SIZE);
        spin_unlock_irqrestore(dev._lock, flags);
        f_pos += n;
        return n;
    }

    /// <summary>Bytes waiting in the circular buffer.</summary>
    public int short_available()
    {
        spin_lock_irqsave(_lock, out ulong flags);
        int n = (_head - _tail + PAGE_SIZE) % PAGE_SIZE;
        spin_unlock_irqrestore(_lock, flags);
        return n;
    }

    /// <summary>Module exit: quiet the device, unhook the irq (waits for a running handler), kill the tasklet, free.</summary>
    public void short_cleanup()
    {
        iowrite8(0, _regs + short_hw.SHORT_CONTROL);
        free_irq(_irq, this);
        tasklet_kill(_tasklet);
        // A handler that ran before free_irq may have queued records the tasklet never saw.
        spin_lock_irqsave(_lock, out ulong flags);
        KPtr list = _pending;
        _pending = NULL;
        spin_unlock_irqrestore(_lock, flags);
        while (!list.IsNull)
        {
            KPtr next = list.Read<KPtr>(EventNext);
            kfree(list);
            list = next;
        }
        free_page(_buffer);
        iounmap(_regs);
    }
}
