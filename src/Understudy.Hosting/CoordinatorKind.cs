namespace Understudy.Hosting;

/// <summary>Where the monitors of a group agree on the configuration and on which of them is active.</summary>
public enum CoordinatorKind
{
    /// <summary>A group of one: the configuration in a file in the data folder (the default without peers).</summary>
    File,

    /// <summary>A group of three or five running Raft among themselves (the default with peers).</summary>
    Raft,

    /// <summary>An external etcd cluster decides (its endpoints in <see cref="MonitorHostOptions.EtcdEndpoints"/>).</summary>
    Etcd,
}
